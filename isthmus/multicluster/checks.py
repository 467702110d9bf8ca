"""`isthmus multicluster check` decided (pure): one verdict with a hint per thing a link needs.

For each link of each cluster: its Secret is usable; the remote's link API answers;
the remote accepts the credential; the remote gateway answers its probes; the
mirrors match the remote's exports (and none is refused); the remote's anchors are
the mesh's own. The CLI gathers the facts (`ClusterLinks`); this only judges them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from isthmus.multicluster.link_secret import LinkConfig
from isthmus.platform.local.link_credentials import credential_id

Result = dict[str, Any]


@dataclass
class ClusterLinks:
    """What one linking cluster's links look like, as gathered by the CLI."""

    cluster: str
    secrets: dict[str, LinkConfig | str] = field(default_factory=dict)
    """Link Secret name -> its config, or why it is unusable."""
    status: dict[str, Any] | str = ""
    """The control plane's `links` answer, or why it could not be had."""
    issued: dict[str, list[dict[str, Any]] | str] = field(default_factory=dict)
    """Remote cluster -> the credentials it has issued (when it runs in this mesh), or why unknown."""
    anchors_pem: str = ""
    """The mesh's own trust bundle."""


def _result(name: str, ok: bool, hint: str = "") -> Result:
    return {"name": name, "ok": ok, "hint": hint, "warning": False}


def evaluate(clusters: list[ClusterLinks]) -> list[Result]:
    out: list[Result] = []
    for c in clusters:
        statuses = {s["cluster"]: s for s in c.status.get("links", [])} if isinstance(c.status, dict) else {}
        broken = {b["secret"]: b["error"] for b in c.status.get("broken", [])} if isinstance(c.status, dict) else {}
        for name, config in sorted(c.secrets.items()):
            if isinstance(config, str) or name in broken:
                why = config if isinstance(config, str) else broken[name]
                out.append(_result(f"[{c.cluster}] link secret {name} is usable", False, why))
                continue
            out.extend(_link(c, config, statuses.get(config.cluster_name)))
    if not out:
        out.append(_result("no cluster has links (make one: isthmus multicluster link --cluster-name NAME)", True))
    return out


def _link(c: ClusterLinks, config: LinkConfig, status: dict[str, Any] | None) -> list[Result]:
    remote = config.cluster_name
    label = f"[{c.cluster} -> {remote}]"
    out = [_result(f"{label} the link secret is usable", True)]
    if status is None:
        why = c.status if isinstance(c.status, str) else "its controller has not started yet"
        hint = f"{why}\nsee `isthmus logs --controlplane --cluster {c.cluster}`"
        return [*out, _result(f"{label} the service mirror is running", False, hint)]
    out.append(_credential(label, config, status, c.issued.get(remote)))
    reachable = bool(status.get("connected")) or bool(status.get("credential_error"))
    out.append(
        _result(
            f"{label} {remote}'s link API at {config.api_address} is reachable",
            reachable,
            f"{status.get('remote_error')}\nis cluster {remote} running? (isthmus status)",
        )
    )
    probe = status.get("probe", {})
    gateway = status.get("gateway", {})
    out.append(
        _result(
            f"{label} {remote}'s gateway at {gateway.get('address')}:{gateway.get('port')} answers its probes",
            probe.get("alive") is True,
            f"{probe.get('last_error') or 'not probed yet'}\nits mirrors get no endpoints meanwhile;"
            f" is the gateway installed? (isthmus multicluster install --cluster {remote})",
        )
    )
    out.append(_in_sync(label, remote, status))
    out.append(_anchors(label, remote, config.ca_bundle, c.anchors_pem))
    return out


def _credential(
    label: str, config: LinkConfig, status: dict[str, Any], issued: list[dict[str, Any]] | str | None
) -> Result:
    name = f"{label} {config.cluster_name} accepts the link credential"
    relink = f"link again: isthmus multicluster link --cluster-name {config.cluster_name} --linking-cluster {config.linking_cluster}"
    if status.get("credential_error"):
        return _result(name, False, f"{status['credential_error']}\n{relink}")
    if isinstance(issued, list):
        # The remote runs in this mesh: its own list says whether the credential still stands.
        if credential_id(config.credential) not in {i.get("id") for i in issued}:
            return _result(
                name, False, f"{config.cluster_name} has no such credential (revoked, or never issued)\n{relink}"
            )
        return _result(name, True)
    if status.get("connected"):
        return _result(name, True)
    return _result(name, False, f"cannot tell while the link API is unreachable: {status.get('remote_error')}")


def _in_sync(label: str, remote: str, status: dict[str, Any]) -> Result:
    exports, mirrors = status.get("exports", []), status.get("mirrors", [])
    name = f"{label} mirrors match {remote}'s exports ({len(exports)} exported, {len(mirrors)} mirrored)"
    if not status.get("synced"):
        return _result(name, False, f"no list of {remote}'s exports received yet")
    problems = [f"{r['service']} is not mirrored: {r['reason']}" for r in status.get("refused", [])]
    problems += [f"{w} (the controller is catching up; look again in a moment)" for w in status.get("out_of_sync", [])]
    if status.get("write_error"):
        problems.append(f"last write failed: {status['write_error']}")
    return _result(name, not problems, "\n".join(problems))


def _anchors(label: str, remote: str, remote_pem: str, local_pem: str) -> Result:
    name = f"{label} {remote} shares this mesh's trust anchor"
    try:
        theirs, ours = _fingerprints(remote_pem), _fingerprints(local_pem)
    except ValueError as e:
        return _result(name, False, f"cannot read the anchors: {e}")
    if theirs & ours:
        return _result(name, True)
    return _result(
        name,
        False,
        f"the link's CA bundle and this mesh's trust bundle have no anchor in common: if this mesh's anchor was"
        f" rotated since the link was made, link again to refresh it; if {remote} is of another mesh, its gateway"
        " refuses this cluster's callers, as both must share one trust anchor (docs/identity.md)",
    )


def _fingerprints(pem: str) -> set[bytes]:
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("no PEM certificate")
    return {c.fingerprint(hashes.SHA256()) for c in x509.load_pem_x509_certificates(pem.encode())}
