"""What a mirror looks like, and what to do with the Service already in its place. Pure.

The service mirror controller (`controller`) turns a linked cluster's exported
Services into these; `isthmus.xds.translate.remote` reads them back. A mirror
never replaces a Service it did not make: a user's `api-east` stays, and the
export is reported as a conflict instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from isthmus.model.mesh import (
    MIRROR_CLUSTER_LABEL,
    MIRROR_GATEWAY_ALIVE_ANNOTATION,
    MIRROR_GATEWAY_ANNOTATION,
    MIRROR_GATEWAY_IDENTITY_ANNOTATION,
    MIRROR_IDENTITIES_ANNOTATION,
    MIRROR_LABEL,
)
from isthmus.model.resources import ANNOTATION_OPAQUE_PORTS, ObjectMeta, Service, ServicePort
from isthmus.model.validate import dns1035_label, dns1123_label
from isthmus.multicluster.errors import MirrorError

# A Service's name is a DNS label.
MAX_NAME = 63


@dataclass(frozen=True)
class RemoteGateway:
    """Where a linked cluster's gateway listens on the wan, and who it must be."""

    ip: str
    port: int
    identity: str


@dataclass(frozen=True)
class ExportedService:
    """An exported Service of the linked cluster, with what its endpoints run as."""

    service: Service
    identities: tuple[str, ...]
    """SPIFFE IDs of the sidecars behind it; the caller accepts any of them."""
    opaque_ports: frozenset[int] = frozenset()
    """Service ports whose endpoints carry opaque TCP."""


def mirror_name(name: str, cluster_name: str) -> str:
    out = f"{name}-{cluster_name}"
    if len(out) > MAX_NAME:
        raise MirrorError(f"mirror name {out!r} is longer than {MAX_NAME} characters; shorten the service's name")
    if problem := dns1035_label(out):
        raise MirrorError(f"mirror name {out!r} {problem}")
    return out


def mirror_of(exported: ExportedService, cluster_name: str, gateway: RemoteGateway, alive: bool = True) -> Service:
    """The mirror Service of one export: same namespace and TCP ports, no selector.

    `alive` False (the gateway fails its probes) marks it so that callers' sidecars
    give it no endpoints until the gateway answers again."""
    if not exported.identities:
        raise MirrorError(
            f"service {exported.service.meta.namespace}/{exported.service.meta.name} in {cluster_name} has no "
            "meshed endpoints, so no identity to check; it is mirrored once it has some"
        )
    meta = exported.service.meta
    if problem := dns1123_label(meta.namespace):
        raise MirrorError(f"namespace {meta.namespace!r} of service {meta.name!r} {problem}")
    tcp = tuple(
        ServicePort(p.port, p.port, p.name)
        for p in sorted(exported.service.ports, key=lambda p: p.port)
        if p.protocol == "TCP"
    )
    annotations = {
        MIRROR_GATEWAY_ANNOTATION: f"{gateway.ip}:{gateway.port}",
        MIRROR_GATEWAY_IDENTITY_ANNOTATION: gateway.identity,
        MIRROR_IDENTITIES_ANNOTATION: ",".join(sorted(set(exported.identities))),
    }
    opaque = sorted(exported.opaque_ports & {p.port for p in tcp})
    if opaque:
        annotations[ANNOTATION_OPAQUE_PORTS] = ",".join(map(str, opaque))
    if not alive:
        annotations[MIRROR_GATEWAY_ALIVE_ANNOTATION] = "false"
    return Service(
        meta=ObjectMeta(
            mirror_name(meta.name, cluster_name),
            meta.namespace,
            labels=((MIRROR_CLUSTER_LABEL, cluster_name), (MIRROR_LABEL, "true")),
            annotations=tuple(sorted(annotations.items())),
        ),
        selector=(),
        ports=tcp,
    )


def with_gateway_alive(svc: Service, alive: bool) -> Service:
    """The same mirror, marked for a gateway that is alive (no mark) or dead."""
    annotations = {k: v for k, v in svc.meta.annotations if k != MIRROR_GATEWAY_ALIVE_ANNOTATION}
    if not alive:
        annotations[MIRROR_GATEWAY_ALIVE_ANNOTATION] = "false"
    return replace(svc, meta=replace(svc.meta, annotations=tuple(sorted(annotations.items()))))


def is_mirror_from(svc: Service, cluster_name: str) -> bool:
    """Made by the mirror of `cluster_name`'s link: the only Services that link may change or delete."""
    return svc.meta.label(MIRROR_LABEL) == "true" and svc.meta.label(MIRROR_CLUSTER_LABEL) == cluster_name


Action = Literal["create", "update", "keep", "conflict"]


def action_for(existing: Service | None, desired: Service, cluster_name: str) -> Action:
    """What to do to put `desired` in place, given the Service of that name today."""
    if existing is None:
        return "create"
    if not is_mirror_from(existing, cluster_name):
        return "conflict"  # a user's Service, or another link's: never overwritten
    return "keep" if existing == desired else "update"


def orphans(existing: Iterable[Service], desired: Iterable[Service], cluster_name: str) -> list[Service]:
    """This link's mirrors that no export stands behind any more (unexported or deleted)."""
    wanted = {(s.meta.namespace, s.meta.name) for s in desired}
    return sorted(
        (s for s in existing if is_mirror_from(s, cluster_name) and (s.meta.namespace, s.meta.name) not in wanted),
        key=lambda s: (s.meta.namespace, s.meta.name),
    )
