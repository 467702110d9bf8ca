"""The sidecar agent: gives the pod its identity, then runs and supervises Envoy.

It makes the workload's private key inside the pod (the key never leaves it),
asks the cluster's identity service to sign a CSR for the pod's SPIFFE ID
(authenticated by the token the platform bound to the pod's service account),
hands certificate and key to Envoy through files Envoy watches (file-based
SDS, in a tmpfs only this sidecar sees), starts Envoy, and renews the
certificate at about 70% of its lifetime without restarting Envoy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from isthmus.identity.client import CertificateRequestError, IssuedCertificate, request_certificate
from isthmus.identity.csr import build_csr, generate_key, private_key_pem
from isthmus.model.mesh import IDENTITY_DIR, parse_node_id, spiffe_id
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.proxy.envoy_binary import envoy_path
from isthmus.proxy.renewal import RETRY_MAX, renew_delay, retry_delay
from isthmus.proxy.sds_files import render_sds_files, write_sds_files

log = logging.getLogger("isthmus.proxy")
IDENTITY_SERVICE_ID = "spiffe://{td}/ns/isthmus-system/sa/isthmus-identity"


def envoy_argv(binary: str, bootstrap: Path, log_level: str) -> list[str]:
    return [
        binary,
        "-c",
        str(bootstrap),
        "--disable-hot-restart",  # every pod shares /dev/shm; hot restart would collide
        "--concurrency",
        "1",
        "--log-level",
        log_level,
        "--drain-time-s",
        "5",
        "--drain-strategy",
        "immediate",
    ]


class Identity:
    """Obtains and renews this workload's certificate."""

    def __init__(self, args: argparse.Namespace, workload_id: str) -> None:
        self.args = args
        self.workload_id = workload_id
        self.server_id = IDENTITY_SERVICE_ID.format(td=args.trust_domain)
        self.dir = Path(args.identity_dir)

    def obtain(self, deadline: float | None) -> IssuedCertificate:
        """One fresh key and certificate, retrying while the identity service is unavailable."""
        attempt = 0
        while True:
            key = generate_key()
            csr = build_csr(key, self.workload_id).decode()
            try:
                issued = request_certificate(
                    str(self.args.identity_socket),
                    Path(self.args.token_file).read_text().strip(),
                    csr,
                    trust_bundle_pem=Path(self.args.trust_bundle).read_text(),
                    server_id=self.server_id,
                )
            except (CertificateRequestError, OSError) as e:
                status = getattr(e, "status", 0)
                if status in (400, 401, 403):
                    log.error("identity service refused %s: %s", self.workload_id, e)
                attempt += 1
                delay = retry_delay(attempt)
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise
                log.warning("no certificate yet for %s (%s); retrying in %.1fs", self.workload_id, e, delay)
                time.sleep(delay)
                continue
            files = render_sds_files(
                issued.certificate_chain, private_key_pem(key).decode(), issued.trust_bundle, str(self.dir)
            )
            write_sds_files(self.dir, files)
            log.info("certificate for %s valid until %s", issued.spiffe_id, issued.expires_at)
            return issued


def _private_tmpfs(directory: Path) -> None:
    """A tmpfs only this process and its children see (the agent runs in its own mount namespace)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700,size=1m", "isthmus-identity", str(directory)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="isthmus-proxy", description="Start the Isthmus sidecar (Envoy) for this pod."
    )
    parser.add_argument("--node-id", required=True, help="<cluster>/<namespace>/<pod>")
    parser.add_argument("--pod-ip", required=True)
    parser.add_argument("--ads-socket", required=True, help="Unix socket of the cluster's ADS server")
    parser.add_argument("--bootstrap", required=True, type=Path, help="where to write Envoy's bootstrap")
    parser.add_argument("--identity-socket", required=True, help="Unix socket of the cluster's identity service")
    parser.add_argument("--token-file", required=True, help="the pod's service-account token")
    parser.add_argument("--trust-bundle", required=True, help="PEM file with the mesh's trust anchors")
    parser.add_argument("--trust-domain", default="cluster.local")
    parser.add_argument("--service-account", default="default")
    parser.add_argument("--identity-dir", default=IDENTITY_DIR, help="where Envoy finds its certificate")
    parser.add_argument("--shared-identity-dir", action="store_true", help="do not mount a private tmpfs there (tests)")
    parser.add_argument("--log-level", default=os.environ.get("ISTHMUS_PROXY_LOG_LEVEL", "warning"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    cluster, namespace, pod = parse_node_id(args.node_id)
    workload_id = spiffe_id(args.trust_domain, namespace, args.service_account)
    if not args.shared_identity_dir:
        _private_tmpfs(Path(args.identity_dir))
    identity = Identity(args, workload_id)
    issued = identity.obtain(deadline=None)

    metadata = {
        "pod": pod,
        "namespace": namespace,
        "cluster": cluster,
        "service_account": args.service_account,
        "pod_ip": args.pod_ip,
    }
    bootstrap = render_bootstrap(args.node_id, cluster, args.pod_ip, args.ads_socket, metadata)
    tmp = args.bootstrap.with_suffix(".tmp")
    tmp.write_text(json.dumps(bootstrap, indent=1))
    tmp.replace(args.bootstrap)

    envoy = subprocess.Popen(envoy_argv(envoy_path(), args.bootstrap, args.log_level))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: envoy.send_signal(s))
    return supervise(envoy, identity, issued)


def supervise(envoy: subprocess.Popen[bytes], identity: Identity, issued: IssuedCertificate) -> int:
    """Renew the certificate on schedule while Envoy runs; exit with Envoy."""
    received = datetime.now(UTC)
    while True:
        wait = renew_delay(received, _parse_time(issued.expires_at), datetime.now(UTC))
        try:
            return envoy.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
        try:
            issued = identity.obtain(deadline=time.monotonic() + RETRY_MAX * 4)
            received = datetime.now(UTC)
        except (CertificateRequestError, OSError) as e:
            # Keep serving on the current certificate and try again soon; it is still valid.
            log.error("renewal failed: %s", e)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


if __name__ == "__main__":
    raise SystemExit(main())
