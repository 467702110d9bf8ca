"""SnapshotCache: latest-wins storage and level-triggered change notification."""

from __future__ import annotations

import asyncio

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2

from isthmus.xds.cache import EMPTY_VERSION, SnapshotCache, VersionedSnapshot
from isthmus.xds.snapshot import CLUSTER, LISTENER, Snapshot


def snap(*clusters: str, listeners: tuple[str, ...] = ()) -> Snapshot:
    return Snapshot(
        {
            CLUSTER: {c: cluster_pb2.Cluster(name=c) for c in clusters},
            LISTENER: {name: listener_pb2.Listener(name=name) for name in listeners},
        }
    )


class Recorder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_set_get_remove() -> None:
    cache = SnapshotCache()
    s = snap("a")
    assert cache.get("n") is None
    assert cache.set("n", s) is True
    assert cache.get("n") is s
    assert cache.node_ids() == {"n"}
    cache.remove("n")
    assert cache.get("n") is None
    cache.remove("n")  # removing an unknown node is harmless


def test_watch_hears_content_changes_of_its_node_only() -> None:
    cache = SnapshotCache()
    mine, other = Recorder(), Recorder()
    cache.watch("n", mine)
    cache.watch("m", other)
    cache.set("n", snap("a"))
    assert (mine.calls, other.calls) == (1, 0)
    cache.set("n", snap("a", "b"))
    assert mine.calls == 2
    cache.remove("n")
    assert mine.calls == 3


def test_identical_set_wakes_nobody_but_replaces_the_object() -> None:
    cache = SnapshotCache()
    rec = Recorder()
    cache.watch("n", rec)
    cache.set("n", snap("a", listeners=("l",)))
    again = snap("a", listeners=("l",))
    assert cache.set("n", again) is False
    assert rec.calls == 1
    assert cache.get("n") is again


def test_absent_and_empty_type_are_the_same_content() -> None:
    only_clusters = VersionedSnapshot.of(Snapshot({CLUSTER: {"a": cluster_pb2.Cluster(name="a")}}))
    with_empty = VersionedSnapshot.of(snap("a"))
    assert with_empty.version(LISTENER) == EMPTY_VERSION
    assert only_clusters.same_content(with_empty)


def test_closed_watch_is_not_called() -> None:
    cache = SnapshotCache()
    rec = Recorder()
    with cache.watch("n", rec):
        cache.set("n", snap("a"))
    cache.set("n", snap("b"))
    assert rec.calls == 1


def test_a_failing_watcher_does_not_stop_the_others() -> None:
    cache = SnapshotCache()

    def broken() -> None:
        raise RuntimeError("boom")

    rec = Recorder()
    cache.watch("n", broken)
    cache.watch("n", rec)
    cache.set("n", snap("a"))
    assert rec.calls == 1


def test_slow_watcher_skips_to_the_latest_and_never_blocks_set() -> None:
    async def main() -> None:
        cache = SnapshotCache()
        changed = asyncio.Event()
        seen: list[Snapshot | None] = []

        async def stream() -> None:
            await changed.wait()
            changed.clear()
            seen.append(cache.get("n"))

        with cache.watch("n", changed.set):
            task = asyncio.create_task(stream())
            # 1000 sets while the stream has not run at all: none of them waits for it.
            for i in range(1000):
                cache.set("n", snap(f"c{i}"))
            await asyncio.wait_for(task, 5)
        assert seen == [cache.get("n")]

    asyncio.run(main())
