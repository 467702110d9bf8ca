"""The service mirror's decisions: a named event and the local Services in, writes out. Pure.

The controller (`controller`) turns the linked cluster's watch into these
events, puts them on one queue and lets one worker apply what `decide` returns;
a periodic `Resync` goes through the same path, so repairs and normal changes
share one code path (as linkerd2's service mirror does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import assert_never

from isthmus.model.resources import Service
from isthmus.multicluster.errors import MirrorError
from isthmus.multicluster.mirrors import (
    ExportedService,
    RemoteGateway,
    action_for,
    is_mirror_from,
    mirror_name,
    mirror_of,
    orphans,
    with_gateway_alive,
)


@dataclass(frozen=True)
class ServiceExported:
    """An export appeared or changed (ports, identities, opaque ports)."""

    export: ExportedService


@dataclass(frozen=True)
class ServiceUnexported:
    """An export was deleted, or lost its label."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Resync:
    """Everything the linked cluster exports now; mirrors of anything else go."""

    exports: tuple[ExportedService, ...]


@dataclass(frozen=True)
class LinkRemoved:
    """`unlink`: every mirror of the link goes."""


@dataclass(frozen=True)
class GatewayHealth:
    """The gateway's probes changed their verdict; `Link.alive` already says the new one."""


MirrorEvent = ServiceExported | ServiceUnexported | Resync | LinkRemoved | GatewayHealth


@dataclass(frozen=True)
class PutMirror:
    service: Service


@dataclass(frozen=True)
class DeleteMirror:
    namespace: str
    name: str


@dataclass(frozen=True)
class Refused:
    """An export left unmirrored; `reason` says why and what to do. Logged, not retried."""

    namespace: str
    name: str
    reason: str


MirrorWrite = PutMirror | DeleteMirror | Refused


@dataclass(frozen=True)
class Link:
    """What one link's mirror needs to know of the linked cluster."""

    cluster_name: str
    gateway: RemoteGateway
    alive: bool = True
    """Whether the gateway answers its probes; mirrors of a dead one get no endpoints."""


def decide(event: MirrorEvent, link: Link, local: Iterable[Service]) -> list[MirrorWrite]:
    """The writes that bring the local cluster's mirrors of `link` in line with `event`."""
    existing = {(s.meta.namespace, s.meta.name): s for s in local}
    match event:
        case ServiceExported(export=export):
            write = _put(export, link, existing)
            return [] if _unchanged(write, existing) else [write]
        case ServiceUnexported(namespace=ns, name=name):
            try:
                found = existing.get((ns, mirror_name(name, link.cluster_name)))
            except MirrorError:
                return []  # too long to have been mirrored
            if found is None or not is_mirror_from(found, link.cluster_name):
                return []  # never mirrored, or the name belongs to a user: nothing of ours to delete
            return [DeleteMirror(ns, found.meta.name)]
        case Resync(exports=exports):
            puts = [_put(e, link, existing) for e in exports]
            wanted = [w.service for w in puts if isinstance(w, PutMirror)]
            gone = orphans(existing.values(), wanted, link.cluster_name)
            return [w for w in puts if not _unchanged(w, existing)] + [
                DeleteMirror(s.meta.namespace, s.meta.name) for s in gone
            ]
        case GatewayHealth():
            marked = [
                with_gateway_alive(s, link.alive)
                for s in sorted(existing.values(), key=lambda s: (s.meta.namespace, s.meta.name))
                if is_mirror_from(s, link.cluster_name)
            ]
            return [PutMirror(s) for s in marked if not _unchanged(PutMirror(s), existing)]
        case LinkRemoved():
            return [
                DeleteMirror(s.meta.namespace, s.meta.name)
                for s in sorted(existing.values(), key=lambda s: (s.meta.namespace, s.meta.name))
                if is_mirror_from(s, link.cluster_name)
            ]
        case _:
            assert_never(event)


def _put(export: ExportedService, link: Link, existing: dict[tuple[str, str], Service]) -> MirrorWrite:
    meta = export.service.meta
    try:
        desired = mirror_of(export, link.cluster_name, link.gateway, link.alive)
    except MirrorError as e:
        return Refused(meta.namespace, meta.name, str(e))
    current = existing.get((desired.meta.namespace, desired.meta.name))
    if action_for(current, desired, link.cluster_name) == "conflict":
        return Refused(
            meta.namespace,
            meta.name,
            f"service {desired.meta.namespace}/{desired.meta.name} exists and is not this link's mirror;"
            " rename or delete it to mirror the export",
        )
    return PutMirror(desired)


def _unchanged(write: MirrorWrite, existing: dict[tuple[str, str], Service]) -> bool:
    return (
        isinstance(write, PutMirror)
        and existing.get((write.service.meta.namespace, write.service.meta.name)) == write.service
    )
