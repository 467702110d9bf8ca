"""Fakes of a link controller's three edges (remote API, local mirror store, gateway prober), for its tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence

from isthmus.model.mesh import EXPORTED_LABEL
from isthmus.model.resources import ObjectMeta, Service, ServicePort
from isthmus.multicluster.controller import ControllerSettings, LinkController
from isthmus.multicluster.errors import CredentialRefused, LocalWriteFailed, RemoteUnavailable
from isthmus.multicluster.link_secret import LinkConfig
from isthmus.multicluster.mirrors import ExportedService, RemoteGateway
from isthmus.multicluster.probes import ProbeFailed
from isthmus.multicluster.remote_wire import (
    Exported,
    GatewayChanged,
    GatewayInfo,
    RemoteUpdate,
    Snapshot,
    Unexported,
)

GATEWAY = RemoteGateway("172.31.255.129", 4143, "spiffe://cluster.local/ns/isthmus-multicluster/sa/isthmus-gateway")
ID = "spiffe://cluster.local/ns/shop/sa/default"
CONFIG = LinkConfig(
    cluster_name="east",
    linking_cluster="west",
    api_host="172.31.255.33",
    api_port=6443,
    api_identity="spiffe://cluster.local/ns/isthmus-system/sa/isthmus-link-api",
    ca_bundle="",
    credential="isthmus-link.v1.x.y",
    gateway=GATEWAY,
    probe_port=4191,
)
FAST = ControllerSettings(
    resync_interval=3600,
    probe_interval=0.01,
    probe_timeout=0.1,
    failures_until_dead=2,
    queue_size=100,
    backoff_initial=0.01,
    backoff_max=0.02,
    credential_retry=0.02,
    write_attempts=3,
)


def export(name: str, *ports: int, namespace: str = "shop") -> ExportedService:
    meta = ObjectMeta(name, namespace, labels=((EXPORTED_LABEL, "true"),))
    return ExportedService(Service(meta, (), tuple(ServicePort(p, p) for p in ports)), (ID,))


class FakeRemote:
    """A remote link API: its exports and gateway, changed by the test; each watch starts with a snapshot."""

    def __init__(self, *exports: ExportedService) -> None:
        self.exports = {(e.service.meta.namespace, e.service.meta.name): e for e in exports}
        self.gateway = GatewayInfo(GATEWAY, 4191, True)
        self.down: RemoteUnavailable | CredentialRefused | None = None
        self.connects = 0
        self._watchers: set[asyncio.Queue[RemoteUpdate | None]] = set()

    def snapshot(self) -> Snapshot:
        return Snapshot(self.gateway, tuple(self.exports[k] for k in sorted(self.exports)))

    async def list(self) -> Snapshot:
        if self.down:
            raise self.down
        return self.snapshot()

    async def watch(self) -> AsyncGenerator[RemoteUpdate, None]:
        self.connects += 1
        if self.down:
            raise self.down
        q: asyncio.Queue[RemoteUpdate | None] = asyncio.Queue()
        self._watchers.add(q)
        try:
            yield self.snapshot()
            while (update := await q.get()) is not None:
                yield update
            raise RemoteUnavailable("east", "the fake remote went away")
        finally:
            self._watchers.discard(q)

    def put(self, e: ExportedService, *, tell: bool = True) -> None:
        self.exports[(e.service.meta.namespace, e.service.meta.name)] = e
        if tell:
            self._tell(Exported(e))

    def remove(self, namespace: str, name: str, *, tell: bool = True) -> None:
        del self.exports[(namespace, name)]
        if tell:
            self._tell(Unexported(namespace, name))

    def move_gateway(self, gateway: RemoteGateway) -> None:
        self.gateway = GatewayInfo(gateway, 4191, True)
        self._tell(GatewayChanged(self.gateway))

    def disconnect(self, why: RemoteUnavailable | CredentialRefused | None = None) -> None:
        """End every open watch; with `why`, refuse new ones the same way until `down` is cleared."""
        self.down = why
        for q in self._watchers:
            q.put_nowait(None)

    def _tell(self, update: RemoteUpdate) -> None:
        for q in self._watchers:
            q.put_nowait(update)


class FakeStore:
    """The local cluster's Services; `fail` makes the next writes fail as the platform would."""

    def __init__(self, *services: Service) -> None:
        self.services_by_key = {(s.meta.namespace, s.meta.name): s for s in services}
        self.fail = 0
        self.writes = 0

    async def services(self) -> list[Service]:
        return list(self.services_by_key.values())

    async def write(self, puts: Sequence[Service], deletes: Sequence[Service]) -> None:
        if self.fail:
            self.fail -= 1
            raise LocalWriteFailed("east", "the fake platform said no")
        self.writes += 1
        for s in deletes:
            self.services_by_key.pop((s.meta.namespace, s.meta.name), None)
        for s in puts:
            self.services_by_key[(s.meta.namespace, s.meta.name)] = s

    def get(self, namespace: str, name: str) -> Service | None:
        return self.services_by_key.get((namespace, name))


class FakeProber:
    def __init__(self) -> None:
        self.alive = True

    async def probe(self, ip: str, port: int, timeout: float) -> None:
        if not self.alive:
            raise ProbeFailed(f"no answer from {ip}:{port}")


def controller(
    remote: FakeRemote, store: FakeStore, prober: FakeProber | None = None, settings: ControllerSettings = FAST
) -> LinkController:
    return LinkController(CONFIG, remote, store, prober or FakeProber(), settings)


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    """Bounded: polls every 10 ms for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
