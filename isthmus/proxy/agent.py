"""The sidecar agent: gives the pod its identity, then runs and supervises Envoy.

It makes the workload's private key inside the pod (the key never leaves it;
the crypto runs in a short-lived child, `certify`, so the resident agent stays small),
asks the cluster's identity service to sign a CSR for the pod's SPIFFE ID
(authenticated by the token the platform bound to the pod's service account),
hands certificate and key to Envoy through files Envoy watches (file-based
SDS, in a tmpfs only this sidecar sees), starts Envoy, and renews the
certificate at about 70% of its lifetime without restarting Envoy, and at once
when an identity rotation bumps the cluster's recertify file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from isthmus.model.mesh import IDENTITY_DIR, parse_node_id, spiffe_id
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.proxy.envoy_binary import envoy_path
from isthmus.proxy.renewal import RETRY_MAX, RecertifyFile, renew_delay

log = logging.getLogger("isthmus.proxy")
WATCH_SECONDS = 1.0
"""How often the agent wakes while Envoy runs: to see a rotation's signal within about a second."""


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
    parser.add_argument(
        "--recertify-file",
        type=Path,
        help="a file of the mesh's state whose change (identity rotation) makes the agent get a new certificate at once",
    )
    parser.add_argument(
        "--gateway-address",
        action="append",
        default=[],
        metavar="IP",
        help="run as a multi-cluster gateway: also serve /ready on this address (its wan address)",
    )
    parser.add_argument("--shared-identity-dir", action="store_true", help="do not mount a private tmpfs there (tests)")
    parser.add_argument("--log-level", default=os.environ.get("ISTHMUS_PROXY_LOG_LEVEL", "warning"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    cluster, namespace, pod = parse_node_id(args.node_id)
    workload_id = spiffe_id(args.trust_domain, namespace, args.service_account)
    if not args.shared_identity_dir:
        _private_tmpfs(Path(args.identity_dir))
    certify = Certifier(args, workload_id)
    # Read before the first certificate is requested, so a rotation that happens meanwhile is not missed.
    recertify = RecertifyFile(args.recertify_file) if args.recertify_file else None
    expires_at = certify(give_up_after=0.0)
    if expires_at is None:
        return 1

    metadata = {
        "pod": pod,
        "namespace": namespace,
        "cluster": cluster,
        "service_account": args.service_account,
        "pod_ip": args.pod_ip,
    }
    if args.gateway_address:
        metadata["gateway_addresses"] = ",".join(args.gateway_address)
    bootstrap = render_bootstrap(
        args.node_id, cluster, args.pod_ip, args.ads_socket, metadata, tuple(args.gateway_address)
    )
    tmp = args.bootstrap.with_suffix(".tmp")
    tmp.write_text(json.dumps(bootstrap, indent=1))
    tmp.replace(args.bootstrap)

    envoy = subprocess.Popen(envoy_argv(envoy_path(), args.bootstrap, args.log_level))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: envoy.send_signal(s))
    return supervise(envoy, certify, expires_at, recertify)


class Certify(Protocol):
    def __call__(self, give_up_after: float) -> str | None:
        """The new certificate's expiry (RFC 3339), or None if none was obtained."""
        ...


class Certifier:
    """Runs `isthmus.proxy.certify` as a child (same pod, same private tmpfs) for each issuance."""

    def __init__(self, args: argparse.Namespace, workload_id: str) -> None:
        self.argv = [
            sys.executable,
            "-m",
            "isthmus.proxy.certify",
            "--workload-id",
            workload_id,
            "--identity-socket",
            str(args.identity_socket),
            "--token-file",
            str(args.token_file),
            "--trust-bundle",
            str(args.trust_bundle),
            "--trust-domain",
            args.trust_domain,
            "--identity-dir",
            str(args.identity_dir),
        ]

    def __call__(self, give_up_after: float) -> str | None:
        """The new certificate's expiry (RFC 3339), or None if none was obtained."""
        done = subprocess.run([*self.argv, "--give-up-after", str(give_up_after)], stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            return None
        expires: str = json.loads(done.stdout)["expires_at"]
        return expires


def supervise(
    envoy: subprocess.Popen[bytes], certify: Certify, expires_at: str, recertify: RecertifyFile | None = None
) -> int:
    """Renew the certificate on schedule, and at once when a rotation asks, while Envoy runs; exit with Envoy."""
    exited = ExitWatch(envoy)
    received = datetime.now(UTC)
    while True:
        generation = recertify.wanted() if recertify else None
        due = renew_delay(received, _parse_time(expires_at), datetime.now(UTC))
        if generation is None and due > 0:
            code = exited.wait(min(due, WATCH_SECONDS))
            if code is not None:
                return code
            continue
        if generation is not None:
            log.info("the mesh's issuer or trust bundle changed (generation %s); getting a new certificate", generation)
        renewed = certify(give_up_after=RETRY_MAX * 4)
        if renewed is None:
            # Keep serving on the current certificate, which is still valid, and try again.
            log.error("renewal failed; retrying")
            code = exited.wait(WATCH_SECONDS)
            if code is not None:
                return code
            continue
        expires_at, received = renewed, datetime.now(UTC)
        if recertify is not None:
            recertify.answered(generation)


class ExitWatch:
    """Waits for Envoy to exit without waking up in between: a pidfd turns readable when the process ends.

    (Popen.wait with a timeout polls, waking about twenty times a second in every pod.)
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._poll: select.poll | None = None
        try:
            fd = os.pidfd_open(process.pid)
        except (OSError, AttributeError):  # a kernel before 5.3: fall back to Popen's polling
            return
        self._fd = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def wait(self, timeout: float) -> int | None:
        """Envoy's exit status if it exits within `timeout` seconds, else None."""
        if self._poll is None:
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        if self._poll.poll(max(0.0, timeout) * 1000):
            return self.process.wait()
        return None


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


if __name__ == "__main__":
    raise SystemExit(main())
