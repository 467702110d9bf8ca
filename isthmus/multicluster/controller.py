"""One link's service mirror: the remote cluster's exports in, this cluster's mirrors out.

Raw callbacks never write. Four tasks turn what they see into named events
(`mirror_events`) on one bounded queue, and one worker applies them one at a
time with `decide`, against the local Services as they are at that moment:

- follow: the remote's watch. Its snapshot (at every connect, so also after a
  restart of either side) becomes `Resync`, each change `ServiceExported` or
  `ServiceUnexported`; a gateway that moved, `Resync` again.
- resync: every `resync_interval`, a fresh list from the remote becomes `Resync`,
  which repairs whatever a missed event or a local edit left behind.
- probe: the gateway's /ready every `probe_interval`; a changed verdict becomes
  `GatewayHealth`, which marks the link's mirrors (a dead gateway's get no
  endpoints in callers' sidecars).
- work: the one worker.

Errors are typed (`errors`): a `Retryable` is retried with back-off (the event is
decided again, against fresh local state), a `Permanent` is logged and shown by
`status()`; an export that cannot be mirrored (a user's Service in the way) is a
refusal, logged once and shown, never retried until something changes. When the
queue is full the newest event is dropped and a full resync follows as soon as the
worker catches up, so the watch never waits on the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, assert_never

from isthmus.model.resources import Service
from isthmus.multicluster.errors import CredentialRefused, Permanent, RemoteUnavailable, Retryable
from isthmus.multicluster.link_secret import LinkConfig
from isthmus.multicluster.local_mirrors import MirrorStore
from isthmus.multicluster.mirror_events import (
    DeleteMirror,
    GatewayHealth,
    Link,
    LinkRemoved,
    MirrorEvent,
    MirrorWrite,
    PutMirror,
    Refused,
    Resync,
    ServiceExported,
    ServiceUnexported,
    decide,
)
from isthmus.multicluster.mirrors import ExportedService, is_mirror_from
from isthmus.multicluster.probes import GatewayProber, ProbeFailed, ProbeRecord
from isthmus.multicluster.remote_api import RemoteApi
from isthmus.multicluster.remote_wire import (
    Exported,
    GatewayChanged,
    GatewayInfo,
    Ping,
    RemoteUpdate,
    Snapshot,
    Unexported,
)

log = logging.getLogger(__name__)
Key = tuple[str, str]


@dataclass(frozen=True)
class ControllerSettings:
    resync_interval: float = 30.0
    """Seconds between full resyncs from a fresh list of the remote's exports."""
    probe_interval: float = 1.0
    """Seconds between two probes of the remote gateway."""
    probe_timeout: float = 1.0
    failures_until_dead: int = 2
    """Failed probes in a row before the gateway counts as dead (one success revives it)."""
    queue_size: int = 1000
    backoff_initial: float = 0.1
    backoff_max: float = 5.0
    """Longest wait between two attempts to reach the remote (so a restarted remote is back within it)."""
    credential_retry: float = 10.0
    """Seconds between attempts with a credential the remote refused (it may be re-admitted)."""
    write_attempts: int = 5
    """Attempts at one event before giving up on it until the next resync."""


@dataclass
class LinkState:
    """What the controller knows, for `gateways` and `check`."""

    connected: bool = False
    last_contact: float | None = None
    remote_error: str = ""
    credential_error: str = ""
    synced: bool = False
    """A snapshot of the remote's exports has been received at least once."""
    exports: dict[Key, ExportedService] = field(default_factory=dict)
    refused: dict[Key, str] = field(default_factory=dict)
    write_error: str = ""
    handled: int = 0
    dropped: int = 0


class LinkController:
    def __init__(
        self,
        config: LinkConfig,
        remote: RemoteApi,
        store: MirrorStore,
        prober: GatewayProber,
        settings: ControllerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.name = config.cluster_name
        self.remote = remote
        self.store = store
        self.prober = prober
        self.settings = settings or ControllerSettings()
        self.clock = clock
        self.link = Link(config.cluster_name, config.gateway)
        self.probe_port = config.probe_port
        self.probes = ProbeRecord(self.settings.failures_until_dead)
        self.state = LinkState()
        self.queue: asyncio.Queue[MirrorEvent] = asyncio.Queue(self.settings.queue_size)
        self._overflowed = False

    async def run(self) -> None:
        """Until cancelled. The gateway is probed once first, so the first mirrors carry its verdict."""
        await self._probe_once()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._follow(), name=f"link {self.name}: remote watch")
            tg.create_task(self._work(), name=f"link {self.name}: worker")
            tg.create_task(self._resync(), name=f"link {self.name}: resync")
            tg.create_task(self._probe(), name=f"link {self.name}: gateway probe")

    async def remove(self) -> None:
        """After `run` is cancelled: delete every mirror of the link (unlink)."""
        await self._handle(LinkRemoved())

    def submit(self, event: MirrorEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.state.dropped += 1
            if not self._overflowed:
                log.warning("link %s: the mirror queue is full; dropping events and resyncing", self.name)
            self._overflowed = True

    def local_changed(self, services: Iterable[Service]) -> None:
        """The local cluster changed (a mirror deleted by hand, a user's Service out of a mirror's way):
        resync at once from the exports already known, instead of at the next periodic resync."""
        if not self.state.synced or not self.queue.empty():
            return
        pending = decide(Resync(tuple(self.state.exports.values())), self.link, services)
        refused = {(w.namespace, w.name): w.reason for w in pending if isinstance(w, Refused)}
        if refused != self.state.refused or any(not isinstance(w, Refused) for w in pending):
            self.submit(Resync(tuple(self.state.exports.values())))

    # the remote

    async def _follow(self) -> None:
        delay = self.settings.backoff_initial
        while True:
            try:
                async with contextlib.aclosing(self.remote.watch()) as updates:
                    async for update in updates:
                        delay = self.settings.backoff_initial
                        self._on_update(update)
                raise RemoteUnavailable(self.name, f"the link API of {self.name} ended the watch")
            except CredentialRefused as e:
                self._refused(e)
                await asyncio.sleep(self.settings.credential_retry)
            except RemoteUnavailable as e:
                if self.state.connected or self.state.remote_error != e.message:
                    log.warning("link %s: %s; retrying", self.name, e.message)
                self.state.connected, self.state.remote_error = False, e.message
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            await self.resync_now()

    async def resync_now(self) -> None:
        """A fresh list of the remote's exports, through the queue as `Resync`; nothing if it cannot be had."""
        try:
            snapshot = await self.remote.list()
        except CredentialRefused as e:
            self._refused(e)
            return
        except RemoteUnavailable as e:
            log.debug("link %s: no resync now: %s", self.name, e.message)
            return
        self._on_update(snapshot)

    def _on_update(self, update: RemoteUpdate) -> None:
        if not self.state.connected:
            log.info("link %s: watching the exports of %s at %s", self.name, self.name, self.config.api_address)
        self.state.connected, self.state.last_contact = True, self.clock()
        self.state.remote_error = self.state.credential_error = ""
        match update:
            case Snapshot(gateway=gateway, exports=exports):
                self._set_gateway(gateway)
                self.state.exports = {_key(e): e for e in exports}
                self.state.synced = True
                self.submit(Resync(exports))
            case Exported(export=export):
                self.state.exports[_key(export)] = export
                self.submit(ServiceExported(export))
            case Unexported(namespace=ns, name=name):
                self.state.exports.pop((ns, name), None)
                self.submit(ServiceUnexported(ns, name))
            case GatewayChanged(gateway=gateway):
                if self._set_gateway(gateway):
                    self.submit(Resync(tuple(self.state.exports.values())))
            case Ping():
                pass
            case _:
                assert_never(update)

    def _set_gateway(self, info: GatewayInfo) -> bool:
        self.probe_port = info.probe_port
        if info.gateway == self.link.gateway:
            return False
        log.info("link %s: the gateway is now %s:%d", self.name, info.gateway.ip, info.gateway.port)
        self.link = replace(self.link, gateway=info.gateway)
        return True

    def _refused(self, e: CredentialRefused) -> None:
        # Mirrors stay as they are: the gateway, not the credential, decides what callers reach.
        if self.state.credential_error != e.message:
            log.error("link %s: %s; mirrors stay as last synced (link again, or unlink)", self.name, e.message)
        self.state.connected, self.state.credential_error = False, e.message

    # the gateway

    async def _probe(self) -> None:
        while True:
            started = self.clock()
            await self._probe_once()
            await asyncio.sleep(max(0.0, self.settings.probe_interval - (self.clock() - started)))

    async def _probe_once(self) -> None:
        gateway, started = self.link.gateway, self.clock()
        try:
            await self.prober.probe(gateway.ip, self.probe_port, self.settings.probe_timeout)
            changed = self.probes.success(self.clock(), self.clock() - started)
        except ProbeFailed as e:
            changed = self.probes.failure(str(e))
        if changed:
            alive = bool(self.probes.alive)
            if alive:
                log.info("link %s: the gateway at %s answers its probes", self.name, gateway.ip)
            else:
                log.warning(
                    "link %s: the gateway is dead (%s); its mirrors get no endpoints", self.name, self.probes.last_error
                )
            self.link = replace(self.link, alive=alive)
            self.submit(GatewayHealth())

    # the worker

    async def _work(self) -> None:
        while True:
            event = await self.queue.get()
            await self._handle(event)
            self.state.handled += 1
            if self._overflowed and self.queue.empty():
                self._overflowed = False
                await self.resync_now()

    async def _handle(self, event: MirrorEvent) -> None:
        delay = self.settings.backoff_initial
        for attempt in range(1, self.settings.write_attempts + 1):
            try:
                local = await self.store.services()
                writes = decide(event, self.link, local)
                self._note_refusals(event, writes)
                await self._write(writes, local)
                self.state.write_error = ""
                return
            except Retryable as e:
                self.state.write_error = e.message
                log.warning(
                    "link %s: %s (attempt %d of %d)", self.name, e.message, attempt, self.settings.write_attempts
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max)
            except Permanent as e:
                self.state.write_error = e.message
                log.error("link %s: %s", self.name, e.message)
                return
        log.error("link %s: gave up on %s for now; the next resync tries again", self.name, type(event).__name__)

    async def _write(self, writes: Sequence[MirrorWrite], local: Iterable[Service]) -> None:
        by_key = {(s.meta.namespace, s.meta.name): s for s in local}
        puts = [w.service for w in writes if isinstance(w, PutMirror)]
        deletes = [
            by_key[(w.namespace, w.name)]
            for w in writes
            if isinstance(w, DeleteMirror) and (w.namespace, w.name) in by_key
        ]
        if not puts and not deletes:
            return
        await self.store.write(puts, deletes)
        for s in puts:
            log.info("link %s: mirror %s/%s written", self.name, s.meta.namespace, s.meta.name)
        for s in deletes:
            log.info("link %s: mirror %s/%s deleted", self.name, s.meta.namespace, s.meta.name)

    def _note_refusals(self, event: MirrorEvent, writes: Sequence[MirrorWrite]) -> None:
        refused = {(w.namespace, w.name): w.reason for w in writes if isinstance(w, Refused)}
        before = dict(self.state.refused)
        match event:
            case Resync():
                self.state.refused = refused
            case ServiceExported(export=export):
                self.state.refused.pop(_key(export), None)
                self.state.refused.update(refused)
            case ServiceUnexported(namespace=ns, name=name):
                self.state.refused.pop((ns, name), None)
            case LinkRemoved():
                self.state.refused = {}
            case GatewayHealth():
                pass
            case _:
                assert_never(event)
        for key, reason in self.state.refused.items():
            if before.get(key) != reason:
                log.warning("link %s: export %s/%s is not mirrored: %s", self.name, key[0], key[1], reason)

    # what `gateways` and `check` show

    def status(self, local: Iterable[Service]) -> dict[str, Any]:
        services = list(local)
        now = self.clock()
        pending = decide(Resync(tuple(self.state.exports.values())), self.link, services) if self.state.synced else []
        return {
            "cluster": self.name,
            "api": self.config.api_address,
            "connected": self.state.connected,
            "since_contact_s": None if self.state.last_contact is None else round(now - self.state.last_contact, 3),
            "remote_error": self.state.remote_error,
            "credential_error": self.state.credential_error,
            "write_error": self.state.write_error,
            "synced": self.state.synced,
            "gateway": {
                "address": self.link.gateway.ip,
                "port": self.link.gateway.port,
                "probe_port": self.probe_port,
                "identity": self.link.gateway.identity,
            },
            "probe": self.probes.summary(now),
            "exports": sorted(f"{ns}/{n}" for ns, n in self.state.exports),
            "mirrors": sorted(f"{s.meta.namespace}/{s.meta.name}" for s in services if is_mirror_from(s, self.name)),
            "refused": [{"service": f"{ns}/{n}", "reason": r} for (ns, n), r in sorted(self.state.refused.items())],
            "out_of_sync": [_describe(w) for w in pending if not isinstance(w, Refused)],
            "queue": {"waiting": self.queue.qsize(), "handled": self.state.handled, "dropped": self.state.dropped},
        }


def _key(export: ExportedService) -> Key:
    return (export.service.meta.namespace, export.service.meta.name)


def _describe(write: MirrorWrite) -> str:
    match write:
        case PutMirror(service=s):
            return f"{s.meta.namespace}/{s.meta.name} to write"
        case DeleteMirror(namespace=ns, name=name):
            return f"{ns}/{name} to delete"
        case Refused(namespace=ns, name=name):
            return f"{ns}/{name} refused"
        case _:
            assert_never(write)
