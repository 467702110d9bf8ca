"""What a cluster's link API tells linked clusters (pure): its exported services and its gateway.

Exactly what the gateway forwards (`isthmus.xds.translate.gateway.is_exported`),
as plain JSON-ready dicts, plus the change messages a watch sends between two
states. The wire format is documented in docs/multicluster.md ("The link API");
`isthmus.multicluster.remote_wire` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from isthmus.model.index import ClusterState
from isthmus.model.mesh import (
    ADMIN_PORT,
    GATEWAY_NAMESPACE,
    GATEWAY_SERVICE_ACCOUNT,
    INBOUND_PORT,
    is_gateway,
    spiffe_id,
)
from isthmus.xds.translate.gateway import is_exported

Message = dict[str, Any]


@dataclass(frozen=True)
class View:
    """Everything one watch has told its client: exports by (namespace, name), and the gateway."""

    exports: dict[tuple[str, str], Message]
    gateway: Message


def exports(state: ClusterState) -> dict[tuple[str, str], Message]:
    out: dict[tuple[str, str], Message] = {}
    for svc in state.services:
        if not is_exported(svc):
            continue
        ports = sorted((p for p in svc.service.ports if p.protocol == "TCP"), key=lambda p: p.port)
        identities: set[str] = set()
        opaque: set[int] = set()
        for port in ports:
            endpoints = [e for e in state.endpoints(svc, port) if e.meshed]
            identities.update(
                spiffe_id(state.settings.trust_domain, svc.namespace, e.service_account) for e in endpoints
            )
            if any(e.opaque for e in endpoints):
                opaque.add(port.port)
        out[(svc.namespace, svc.name)] = {
            "namespace": svc.namespace,
            "name": svc.name,
            "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in ports],
            "identities": sorted(identities),
            "opaque_ports": sorted(opaque),
        }
    return out


def gateway(state: ClusterState, address: str) -> Message:
    pods = [p for p in state.pods if p.injected and is_gateway(p.namespace, p.annotations)]
    return {
        "address": address,
        "port": INBOUND_PORT,
        "probe_port": ADMIN_PORT,
        "identity": spiffe_id(state.settings.trust_domain, GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT),
        "installed": bool(pods),
        "ready": any(p.ready for p in pods),
    }


def view(state: ClusterState, gateway_address: str) -> View:
    return View(exports(state), gateway(state, gateway_address))


def snapshot(cluster: str, current: View) -> Message:
    """The first message of a watch, and the only one of a list."""
    return {
        "ok": True,
        "type": "snapshot",
        "cluster": cluster,
        "gateway": current.gateway,
        "exports": [current.exports[k] for k in sorted(current.exports)],
    }


def changes(before: View, after: View) -> list[Message]:
    """The messages that take a client from `before` to `after`, in a stable order."""
    out: list[Message] = []
    if after.gateway != before.gateway:
        out.append({"ok": True, "type": "gateway", "gateway": after.gateway})
    for key in sorted(after.exports):
        if before.exports.get(key) != after.exports[key]:
            out.append({"ok": True, "type": "exported", "export": after.exports[key]})
    for ns, name in sorted(before.exports.keys() - after.exports.keys()):
        out.append({"ok": True, "type": "unexported", "namespace": ns, "name": name})
    return out
