"""The latest `Snapshot` of every proxy, and change notification for the streams that serve them.

Notification is level-triggered: a watcher learns "node X changed" and then reads the newest snapshot,
so a slow stream skips intermediate snapshots instead of queueing them, and `set` never waits for
anyone. The cache knows nothing of gRPC. It is not thread-safe: call it from the event loop's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType

from isthmus.xds.snapshot import Snapshot, content_version

log = logging.getLogger(__name__)

EMPTY_VERSION = content_version({})

Notify = Callable[[], object]
"""Called synchronously inside `set`/`remove`; must be cheap and must not block (e.g. `asyncio.Event.set`)."""


@dataclass(frozen=True)
class VersionedSnapshot:
    """A snapshot with its per-type versions hashed once, at `set`, instead of by every stream."""

    snapshot: Snapshot
    versions: Mapping[str, str]

    @classmethod
    def of(cls, snapshot: Snapshot) -> VersionedSnapshot:
        versions = {t: snapshot.version(t) for t in snapshot.resources}
        return cls(snapshot, MappingProxyType(versions))

    def version(self, type_url: str) -> str:
        return self.versions.get(type_url, EMPTY_VERSION)

    def same_content(self, other: VersionedSnapshot) -> bool:
        # A type that is absent and a type that is present but empty carry the same (empty) config.
        types = self.versions.keys() | other.versions.keys()
        return all(self.version(t) == other.version(t) for t in types)


class Watch:
    """A stream's interest in one node. Close it (or use it as a context manager) when the stream ends."""

    def __init__(self, cache: SnapshotCache, node_id: str, notify: Notify) -> None:
        self._cache = cache
        self.node_id = node_id
        self.notify = notify

    def close(self) -> None:
        self._cache._unwatch(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class SnapshotCache:
    """node id -> latest snapshot; watchers of a node are told when its content changes."""

    def __init__(self) -> None:
        self._entries: dict[str, VersionedSnapshot] = {}
        self._watches: dict[str, set[Watch]] = {}

    def set(self, node_id: str, snapshot: Snapshot) -> bool:
        """Publish `snapshot` for `node_id`. Returns False (and wakes nobody) if its content is unchanged."""
        entry = VersionedSnapshot.of(snapshot)
        old = self._entries.get(node_id)
        self._entries[node_id] = entry
        if old is not None and old.same_content(entry):
            return False
        self._notify(node_id)
        return True

    def remove(self, node_id: str) -> None:
        """Forget a node. Its connected proxies keep their last config; their requests wait for a new set."""
        if self._entries.pop(node_id, None) is not None:
            self._notify(node_id)

    def get(self, node_id: str) -> Snapshot | None:
        entry = self._entries.get(node_id)
        return None if entry is None else entry.snapshot

    def get_versioned(self, node_id: str) -> VersionedSnapshot | None:
        return self._entries.get(node_id)

    def node_ids(self) -> frozenset[str]:
        return frozenset(self._entries)

    def watch(self, node_id: str, notify: Notify) -> Watch:
        """Call `notify()` whenever `node_id`'s snapshot changes or is removed, until the watch is closed."""
        w = Watch(self, node_id, notify)
        self._watches.setdefault(node_id, set()).add(w)
        return w

    def _unwatch(self, w: Watch) -> None:
        watches = self._watches.get(w.node_id)
        if watches is None:
            return
        watches.discard(w)
        if not watches:
            del self._watches[w.node_id]

    def _notify(self, node_id: str) -> None:
        # Copy: a callback may close its own watch.
        for w in list(self._watches.get(node_id, ())):
            try:
                w.notify()
            except Exception:
                # One broken watcher must not stop the others from hearing about the change.
                log.exception("snapshot watcher for %s failed", node_id)
