"""`isthmus identity ...` and the trust flags of `isthmus up`: the mesh's trust material as a user handles it.

`trust-anchor create` and `issuer create` write CA files; `up --trust-anchor ...`
checks the user's own anchor and issuers before anything starts; `show POD`
reads the certificate a running sidecar serves with from its Envoy's admin API.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from isthmus.cli import render, rotate
from isthmus.cli.commands import call_daemon, state_paths
from isthmus.cli.errors import CliError
from isthmus.identity.anchors import CA_BACKDATE, CertificateAuthority, create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle
from isthmus.identity.clock import Clock, SystemClock
from isthmus.identity.errors import IdentityError, TrustMaterialError
from isthmus.identity.load import load_trust_anchor, load_trust_bundle
from isthmus.identity.spiffe import DEFAULT_TRUST_DOMAIN, trust_domain_problem
from isthmus.model.mesh import ADMIN_PORT, WORKLOAD_SECRET
from isthmus.platform.local import launcher, trust
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.pods import pod_argv

MAX_LIFETIME_DAYS = 100 * 365
# Only the workload certificate chain, by name: the response never carries the key, not even redacted.
SECRETS_URL = (
    f"http://127.0.0.1:{ADMIN_PORT}/config_dump?resource=dynamic_active_secrets"
    "&mask=secret.name,secret.tls_certificate.certificate_chain"
)
# Runs inside the pod (its network namespace): the admin API listens on the pod's loopback only.
_FETCH = (
    "import sys, urllib.request\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "sys.stdout.write(opener.open(sys.argv[1], timeout=5).read().decode())\n"
)
FETCH_TIMEOUT = 20.0


# ---------------------------------------------------------------- create


def one_line_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the identity stage's errors (each names its file and problem) into the CLI's one-line error."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except IdentityError as e:
            raise CliError(str(e)) from e

    return run


def _lifetime(days: int) -> timedelta:
    if not 1 <= days <= MAX_LIFETIME_DAYS:
        raise CliError(f"--lifetime-days must be a whole number from 1 to {MAX_LIFETIME_DAYS}, got {days}")
    return timedelta(days=days)


def _write_ca(ca: CertificateAuthority, cert: Path, key: Path) -> None:
    """Write both files or neither: refuse existing files and missing folders before writing anything."""
    if cert.resolve() == key.resolve():
        raise CliError(f"--cert and --key are the same file ({cert}); the key needs a file of its own")
    for path in (cert, key):
        if path.exists() or path.is_symlink():
            raise CliError(f"{path}: already exists; refusing to overwrite it (remove it or choose another path)")
        if not path.parent.is_dir():
            raise CliError(f"{path}: folder {path.parent} does not exist")
    try:
        ca.write(cert, key)
    except TrustMaterialError:
        if not cert.exists():
            key.unlink(missing_ok=True)  # the key was written, its certificate was not
        raise


@one_line_errors
def trust_anchor_create(args: argparse.Namespace) -> int:
    if problem := trust_domain_problem(args.trust_domain):
        raise CliError(f"--trust-domain: {problem}")
    anchor = create_trust_anchor(SystemClock(), trust_domain=args.trust_domain, lifetime=_lifetime(args.lifetime_days))
    cert, key = Path(args.cert), Path(args.key)
    _write_ca(anchor, cert, key)
    print(f"created trust anchor {_cn(anchor.certificate)!r} for trust domain {args.trust_domain}")
    print(f"  certificate: {cert} (valid until {anchor.not_after:%Y-%m-%d})")
    print(f"  key:         {key} (mode 0600; keep it offline once the issuers exist)")
    print(
        f"Next: isthmus identity issuer create --trust-anchor {cert} --trust-anchor-key {key}"
        " --cluster NAME --cert NAME-issuer.crt --key NAME-issuer.key"
    )
    return 0


@one_line_errors
def issuer_create(args: argparse.Namespace) -> int:
    clock = SystemClock()
    lifetime = _lifetime(args.lifetime_days)
    anchor = load_trust_anchor(Path(args.trust_anchor), Path(args.trust_anchor_key), clock)
    domain = args.trust_domain or _anchor_trust_domain(anchor.certificate)
    if problem := trust_domain_problem(domain):
        raise CliError(f"--trust-domain: {problem}")
    issuer = create_issuer(anchor, args.cluster, clock, trust_domain=domain, lifetime=lifetime)
    cert, key = Path(args.cert), Path(args.key)
    _write_ca(issuer, cert, key)
    capped = "; capped at the anchor's expiry" if issuer.not_after < clock.now() + lifetime - CA_BACKDATE else ""
    print(f"created issuer for cluster {args.cluster}, signed by {_cn(anchor.certificate)!r}, trust domain {domain}")
    print(f"  certificate: {cert} (valid until {issuer.not_after:%Y-%m-%d}{capped})")
    print(f"  key:         {key} (mode 0600)")
    print(
        f"Use it: isthmus up --trust-anchor {args.trust_anchor}"
        f" --issuer {args.cluster}={cert} --issuer-key {args.cluster}={key}"
    )
    return 0


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _anchor_trust_domain(anchor: x509.Certificate) -> str:
    """An Isthmus anchor names its trust domain as its organization; otherwise the default."""
    orgs = anchor.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    org = str(orgs[0].value) if orgs else ""
    return org if org and trust_domain_problem(org) is None else DEFAULT_TRUST_DOMAIN


# ---------------------------------------------------------------- show


@dataclass(frozen=True)
class PodCertificate:
    """What `identity show` found in a sidecar, judged against the mesh's trust material."""

    pod: str
    namespace: str
    cluster: str
    chain: Sequence[x509.Certificate]
    issuer_cluster: str | None
    """The cluster whose stored issuer signed the certificate, or None if it is none of them."""
    anchor: x509.Certificate | None
    chain_problem: str | None
    """Why the chain does not verify against the mesh's trust bundle, or None."""

    def as_dict(self, now: datetime) -> dict[str, Any]:
        leaf = self.chain[0]
        issuer = self.chain[1] if len(self.chain) > 1 else None
        return {
            "pod": self.pod,
            "namespace": self.namespace,
            "cluster": self.cluster,
            "spiffe_id": ", ".join(_uri_sans(leaf)),
            "serial": f"{leaf.serial_number:x}",
            "not_before": _iso(leaf.not_valid_before_utc),
            "not_after": _iso(leaf.not_valid_after_utc),
            "remaining_seconds": int((leaf.not_valid_after_utc - now).total_seconds()),
            "issuer": {
                "subject": leaf.issuer.rfc4514_string(),
                "cluster": self.issuer_cluster,
                "serial": f"{issuer.serial_number:x}" if issuer else None,
            },
            "trust_anchor": self.anchor.subject.rfc4514_string() if self.anchor else None,
            "chain_verified": self.chain_problem is None,
            "chain_problem": self.chain_problem,
        }


def parse_secrets_dump(text: str, pod: str) -> list[x509.Certificate]:
    """The workload certificate chain from Envoy's secrets config dump; CliError if there is none."""
    try:
        configs = json.loads(text).get("configs", [])
    except (ValueError, AttributeError):
        raise CliError(f"pod {pod}: the sidecar's admin API answered with something that is not JSON") from None
    for entry in configs:
        secret = entry.get("secret", {}) if isinstance(entry, dict) else {}
        if secret.get("name") != WORKLOAD_SECRET:
            continue
        pem = secret.get("tls_certificate", {}).get("certificate_chain", {}).get("inline_string", "")
        try:
            return x509.load_pem_x509_certificates(pem.encode())
        except ValueError:
            break
    raise CliError(
        f"pod {pod}: its sidecar's Envoy holds no workload certificate yet; Envoy loads it once the pod serves a"
        f" port or calls a meshed service, and the agent may still be fetching it (see `isthmus logs --proxy {pod}`)"
    )


def judge(
    pod: Mapping[str, Any],
    chain: Sequence[x509.Certificate],
    issuers: Mapping[str, x509.Certificate],
    bundle: TrustBundle | None,
    clock: Clock,
) -> PodCertificate:
    """Which cluster's issuer signed the chain and whether it verifies to the mesh's anchors (pure)."""
    issuer_cluster = None
    for cluster, issuer in issuers.items():
        if issuer.subject == chain[0].issuer and _signed_by(chain[0], issuer):
            issuer_cluster = cluster
            break
    anchor: x509.Certificate | None = None
    problem: str | None = "this mesh's trust bundle could not be read"
    if bundle is not None:
        try:
            bundle.verify_workload_chain(chain, clock)
            anchor, problem = bundle.signer_of(chain[1]), None
        except TrustMaterialError as e:
            problem = str(e)
    return PodCertificate(pod["name"], pod["namespace"], pod["cluster"], chain, issuer_cluster, anchor, problem)


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(u) for u in names.get_values_for_type(x509.UniformResourceIdentifier)]


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_secrets(paths: StatePaths, info: Mapping[str, Any]) -> str:
    """GET the sidecar's secrets dump from inside the pod; bounded by FETCH_TIMEOUT."""
    try:
        prefix = launcher.enter_argv(paths)
    except launcher.LaunchError as e:
        raise CliError(str(e)) from e
    argv = prefix + pod_argv(
        info["netns"], Path(info["dir"]), info["name"], [sys.executable, "-c", _FETCH, SECRETS_URL]
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise CliError(
            f"pod {info['name']}: its sidecar's admin API did not answer within {FETCH_TIMEOUT:.0f}s"
        ) from None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise CliError(
            f"pod {info['name']}: cannot read its sidecar's certificate ({reason});"
            f" see `isthmus logs --proxy {info['name']}`"
        )
    return proc.stdout


def _mesh_trust(paths: StatePaths, clock: Clock) -> tuple[dict[str, x509.Certificate], TrustBundle | None]:
    issuers = {}
    for cluster, path in trust.stored_issuers(paths).items():
        try:
            issuers[cluster] = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            continue
    try:
        bundle: TrustBundle | None = load_trust_bundle(paths.trust_bundle, clock)
    except TrustMaterialError:
        bundle = None
    return issuers, bundle


@one_line_errors
def show(args: argparse.Namespace) -> int:
    paths, clock = state_paths(args), SystemClock()
    info = call_daemon(paths, {"op": "pod", "cluster": args.cluster, "name": args.pod})
    items = call_daemon(paths, {"op": "get", "kind": "pods", "cluster": info["cluster"]})["items"]
    pod = next((p for p in items if p["name"] == info["name"]), None)
    if pod is None or not pod.get("sidecar"):
        raise CliError(
            f"pod {args.pod} has no sidecar (isthmus.io/inject: disabled), so it has no mesh identity;"
            " remove that annotation to mesh it"
        )
    chain = parse_secrets_dump(fetch_secrets(paths, info), info["name"])
    issuers, bundle = _mesh_trust(paths, clock)
    found = judge(info, chain, issuers, bundle, clock).as_dict(clock.now())
    print(render.as_json(found) if args.output == "json" else render.pod_identity(found))
    return 0


# ---------------------------------------------------------------- arguments


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `isthmus identity ...` to the top-level subcommands."""
    group = sub.add_parser(
        "identity",
        help="trust anchors, issuers and workload identities",
        description="Create the mesh's trust material, and see which identity a workload runs with.",
    )
    verbs = group.add_subparsers(dest="identity_command", metavar="COMMAND", required=True)

    anchor = verbs.add_parser("trust-anchor", help="the mesh's root of trust").add_subparsers(
        dest="anchor_command", metavar="COMMAND", required=True
    )
    p = anchor.add_parser(
        "create",
        help="write a new trust anchor (self-signed ECDSA P-256 CA) and its key",
        description="Write a new trust anchor: a long-lived, self-signed ECDSA P-256 CA that every cluster's"
        " issuer chains to. The key file gets mode 0600; existing files are never overwritten.",
    )
    p.add_argument("--cert", required=True, metavar="FILE", help="where to write the certificate (PEM)")
    p.add_argument("--key", required=True, metavar="FILE", help="where to write the private key (PEM, mode 0600)")
    p.add_argument(
        "--trust-domain", default=DEFAULT_TRUST_DOMAIN, help="the mesh's trust domain (default cluster.local)"
    )
    p.add_argument("--lifetime-days", type=int, default=3650, metavar="N", help="validity in days (default 3650)")
    p.set_defaults(func=trust_anchor_create)

    issuer = verbs.add_parser("issuer", help="a cluster's intermediate CA").add_subparsers(
        dest="issuer_command", metavar="COMMAND", required=True
    )
    p = issuer.add_parser(
        "create",
        help="write a new issuer for one cluster, signed by the trust anchor",
        description="Write a new issuer for one cluster: an intermediate CA signed by the trust anchor, limited to"
        " signing workload certificates of the trust domain. Each cluster needs its own.",
    )
    p.add_argument("--trust-anchor", required=True, metavar="CERT", help="the trust anchor's certificate")
    p.add_argument("--trust-anchor-key", required=True, metavar="KEY", help="the trust anchor's private key")
    p.add_argument("--cluster", required=True, help="the cluster this issuer is for")
    p.add_argument("--cert", required=True, metavar="FILE", help="where to write the issuer's certificate")
    p.add_argument("--key", required=True, metavar="FILE", help="where to write the issuer's key (mode 0600)")
    p.add_argument("--trust-domain", help="trust domain it may issue for (default: the anchor's)")
    p.add_argument("--lifetime-days", type=int, default=365, metavar="N", help="validity in days (default 365)")
    p.set_defaults(func=issuer_create)

    p = verbs.add_parser(
        "show",
        help="show a pod's workload certificate, read from its running sidecar",
        description="Show the identity a pod's sidecar serves with: its SPIFFE ID, issuer, serial and expiry,"
        " read from the sidecar's Envoy (never from a key file).",
    )
    p.add_argument("pod")
    p.add_argument("--cluster", "-c", help="which cluster (needed when more than one runs)")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=show)

    rotate.register(verbs)
