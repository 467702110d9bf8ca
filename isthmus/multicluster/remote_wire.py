"""Reading the remote cluster's link API (pure): one JSON line in, one named update out.

The format is the local platform's (`isthmus.platform.local.link_exports`),
documented in docs/multicluster.md ("The link API"). Anything malformed is a
`RemoteUnavailable` (the connection is dropped and made again), a refusal of the
credential a `CredentialRefused`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from isthmus.model.mesh import EXPORTED_LABEL
from isthmus.model.resources import ObjectMeta, Service, ServicePort
from isthmus.multicluster.errors import CredentialRefused, RemoteUnavailable
from isthmus.multicluster.mirrors import ExportedService, RemoteGateway


@dataclass(frozen=True)
class GatewayInfo:
    gateway: RemoteGateway
    probe_port: int
    installed: bool


@dataclass(frozen=True)
class Snapshot:
    """Everything the remote exports now (the start of a watch, or a list)."""

    gateway: GatewayInfo
    exports: tuple[ExportedService, ...]


@dataclass(frozen=True)
class Exported:
    export: ExportedService


@dataclass(frozen=True)
class Unexported:
    namespace: str
    name: str


@dataclass(frozen=True)
class GatewayChanged:
    gateway: GatewayInfo


@dataclass(frozen=True)
class Ping:
    """Nothing changed; the remote is still there."""


RemoteUpdate = Snapshot | Exported | Unexported | GatewayChanged | Ping


def decode(cluster: str, msg: Any) -> RemoteUpdate:
    if not isinstance(msg, dict):
        raise RemoteUnavailable(cluster, f"the link API of {cluster} sent something other than a JSON object")
    if not msg.get("ok"):
        error = str(msg.get("error") or "no reason given")
        if msg.get("code") == "unauthorized":
            raise CredentialRefused(cluster, f"{cluster} refuses the link credential: {error}")
        raise RemoteUnavailable(cluster, f"the link API of {cluster} answered with an error: {error}")
    try:
        match msg.get("type"):
            case "snapshot":
                return Snapshot(_gateway(msg["gateway"]), tuple(_export(e) for e in msg["exports"]))
            case "exported":
                return Exported(_export(msg["export"]))
            case "unexported":
                return Unexported(_name(msg["namespace"]), _name(msg["name"]))
            case "gateway":
                return GatewayChanged(_gateway(msg["gateway"]))
            case "ping":
                return Ping()
            case other:
                raise ValueError(f"unknown message type {other!r}")
    except (KeyError, TypeError, ValueError) as e:
        raise RemoteUnavailable(cluster, f"the link API of {cluster} sent a malformed message ({e!r})") from None


def _export(e: Any) -> ExportedService:
    ports = tuple(
        ServicePort(_port(p["port"]), _port(p["port"]), str(p.get("name") or ""), _protocol(p.get("protocol", "TCP")))
        for p in e["ports"]
    )
    service = Service(
        ObjectMeta(_name(e["name"]), _name(e["namespace"]), labels=((EXPORTED_LABEL, "true"),)), (), ports
    )
    identities = tuple(sorted(str(i) for i in e["identities"]))
    return ExportedService(service, identities, frozenset(_port(p) for p in e.get("opaque_ports", ())))


def _gateway(g: Any) -> GatewayInfo:
    ip = str(ipaddress.ip_address(str(g["address"])))
    gateway = RemoteGateway(ip, _port(g["port"]), str(g["identity"]))
    return GatewayInfo(gateway, _port(g["probe_port"]), bool(g.get("installed", True)))


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 253:
        raise ValueError(f"not a name: {value!r}")
    return value


def _port(value: Any) -> int:
    if type(value) is not int or not 0 < value < 65536:
        raise ValueError(f"not a port: {value!r}")
    return value


def _protocol(value: Any) -> Any:
    if value not in ("TCP", "UDP"):
        raise ValueError(f"not a protocol: {value!r}")
    return value
