"""One certificate for this workload: a fresh key made here, a CSR, the identity service's answer,
and the files Envoy watches. Run by the agent as a short-lived child for every issuance, so
the process that stays resident beside Envoy never carries the crypto libraries' memory.

Prints {"expires_at": ...} on success; exits non-zero with the reason on stderr otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from isthmus.identity.client import CertificateRequestError, IssuedCertificate, request_certificate
from isthmus.identity.csr import build_csr, generate_key, private_key_pem
from isthmus.proxy.renewal import retry_delay
from isthmus.proxy.sds_files import render_sds_files, write_sds_files

log = logging.getLogger("isthmus.proxy")
IDENTITY_SERVICE_ID = "spiffe://{td}/ns/isthmus-system/sa/isthmus-identity"


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


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="isthmus-certify", description="Get this workload's certificate (run by the sidecar agent)."
    )
    parser.add_argument("--workload-id", required=True)
    parser.add_argument("--identity-socket", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--trust-bundle", required=True)
    parser.add_argument("--trust-domain", required=True)
    parser.add_argument("--identity-dir", required=True)
    parser.add_argument("--give-up-after", type=float, default=0.0, help="seconds; 0 retries until it succeeds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    deadline = time.monotonic() + args.give_up_after if args.give_up_after > 0 else None
    try:
        issued = Identity(args, args.workload_id).obtain(deadline)
    except (CertificateRequestError, OSError) as e:
        print(f"isthmus-certify: no certificate for {args.workload_id}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"expires_at": issued.expires_at, "spiffe_id": issued.spiffe_id}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
