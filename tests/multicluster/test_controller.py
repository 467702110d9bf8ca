"""One link's controller against fakes of its edges: events in, one worker, mirrors out; errors by type."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from isthmus.model.mesh import MIRROR_GATEWAY_ALIVE_ANNOTATION
from isthmus.model.resources import ObjectMeta, Service, ServicePort
from isthmus.multicluster.controller import LinkController
from isthmus.multicluster.errors import CredentialRefused, RemoteUnavailable
from isthmus.multicluster.mirror_events import ServiceUnexported
from isthmus.multicluster.mirrors import RemoteGateway, mirror_of
from tests.multicluster.fakes import (
    FAST,
    GATEWAY,
    FakeProber,
    FakeRemote,
    FakeStore,
    controller,
    eventually,
    export,
)

USERS_API_EAST = Service(ObjectMeta("api-east", "shop"), (("app", "mine"),), (ServicePort(80, 8080),))


@contextlib.asynccontextmanager
async def running(c: LinkController) -> AsyncIterator[LinkController]:
    task = asyncio.create_task(c.run())
    try:
        yield c
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def ports(store: FakeStore, name: str) -> list[int] | None:
    svc = store.get("shop", name)
    return None if svc is None else [p.port for p in svc.ports]


def test_export_port_change_and_unexport_reach_the_mirrors() -> None:
    async def test() -> None:
        remote, store = FakeRemote(export("api", 80)), FakeStore()
        async with running(controller(remote, store)) as c:
            await eventually(lambda: ports(store, "api-east") == [80], "the mirror of api")
            remote.put(export("api", 80, 8080))
            await eventually(lambda: ports(store, "api-east") == [80, 8080], "the new port")
            remote.put(export("db", 5432))
            await eventually(lambda: ports(store, "db-east") == [5432], "the mirror of db")
            remote.remove("shop", "api")
            await eventually(lambda: store.get("shop", "api-east") is None, "the mirror of api to go")
            status = c.status(await store.services())
            assert status["exports"] == ["shop/db"] and status["mirrors"] == ["shop/db-east"]
            assert status["out_of_sync"] == [] and status["connected"]

    run(test)


def test_a_users_service_is_refused_not_overwritten_and_mirrored_once_it_is_gone() -> None:
    async def test() -> None:
        remote, store = FakeRemote(export("api", 80)), FakeStore(USERS_API_EAST)
        async with running(controller(remote, store)) as c:
            await eventually(lambda: bool(c.state.refused), "the refusal")
            assert store.get("shop", "api-east") == USERS_API_EAST
            (refused,) = c.status(await store.services())["refused"]
            assert refused["service"] == "shop/api" and "not this link's mirror" in refused["reason"]
            del store.services_by_key[("shop", "api-east")]  # the user deletes theirs
            c.local_changed(await store.services())
            await eventually(lambda: ports(store, "api-east") == [80], "the mirror in its place")
            assert not c.state.refused

    run(test)


def test_a_failed_write_is_retried_with_back_off() -> None:
    async def test() -> None:
        remote, store = FakeRemote(export("api", 80)), FakeStore()
        store.fail = 2  # fewer than FAST.write_attempts
        async with running(controller(remote, store)) as c:
            await eventually(lambda: ports(store, "api-east") == [80], "the mirror, on the third attempt")
            assert c.state.write_error == ""

    run(test)


def test_after_a_lost_watch_the_reconnect_snapshot_repairs_what_was_missed() -> None:
    async def test() -> None:
        remote, store = FakeRemote(export("api", 80), export("db", 5432)), FakeStore()
        async with running(controller(remote, store)) as c:
            await eventually(lambda: ports(store, "db-east") == [5432], "both mirrors")
            remote.disconnect(RemoteUnavailable("east", "east restarts"))
            await eventually(lambda: not c.state.connected, "the link to notice")
            remote.remove("shop", "db", tell=False)  # unexported while nobody watched
            remote.put(export("web", 8080), tell=False)
            remote.down = None
            await eventually(lambda: store.get("shop", "db-east") is None, "the orphan to go")
            await eventually(lambda: ports(store, "web-east") == [8080], "the new export")
            assert ports(store, "api-east") == [80] and c.state.connected

    run(test)


def test_a_refused_credential_leaves_the_mirrors_and_says_so() -> None:
    async def test() -> None:
        remote, store = FakeRemote(export("api", 80)), FakeStore()
        async with running(controller(remote, store)) as c:
            await eventually(lambda: ports(store, "api-east") == [80], "the mirror")
            remote.disconnect(CredentialRefused("east", "east refuses the link credential: revoked"))
            await eventually(lambda: bool(c.state.credential_error), "the refusal")
            await asyncio.sleep(0.1)  # several retries
            assert ports(store, "api-east") == [80]
            assert "revoked" in c.status(await store.services())["credential_error"]

    run(test)


def test_a_dead_gateway_marks_the_mirrors_and_a_live_one_clears_the_mark() -> None:
    def alive(store: FakeStore) -> str | None:
        svc = store.get("shop", "api-east")
        return None if svc is None else svc.meta.annotation(MIRROR_GATEWAY_ALIVE_ANNOTATION)

    async def test() -> None:
        remote, store, prober = FakeRemote(export("api", 80)), FakeStore(), FakeProber()
        async with running(controller(remote, store, prober)) as c:
            await eventually(lambda: ports(store, "api-east") == [80], "the mirror")
            assert alive(store) is None
            prober.alive = False
            await eventually(lambda: alive(store) == "false", "the mark of a dead gateway")
            assert c.probes.consecutive_failures >= FAST.failures_until_dead
            summary = c.status(await store.services())["probe"]
            assert summary["alive"] is False and summary["latency_ms"]["p50"] is not None
            prober.alive = True
            await eventually(lambda: alive(store) is None, "the mark to go")

    run(test)


def test_a_gateway_that_is_dead_from_the_start_gets_marked_mirrors_at_once() -> None:
    async def test() -> None:
        remote, store, prober = FakeRemote(export("api", 80)), FakeStore(), FakeProber()
        prober.alive = False
        async with running(controller(remote, store, prober)):
            await eventually(lambda: store.get("shop", "api-east") is not None, "the mirror")
            svc = store.get("shop", "api-east")
            assert svc is not None and svc.meta.annotation(MIRROR_GATEWAY_ALIVE_ANNOTATION) == "false"
            assert store.writes == 1  # written marked, not written and then marked

    run(test)


def test_a_moved_gateway_rewrites_the_mirrors() -> None:
    async def test() -> None:
        remote, store = FakeRemote(export("api", 80)), FakeStore()
        async with running(controller(remote, store)):
            await eventually(lambda: ports(store, "api-east") == [80], "the mirror")
            moved = RemoteGateway("172.31.255.140", 4143, GATEWAY.identity)
            remote.move_gateway(moved)
            expected = mirror_of(export("api", 80), "east", moved)
            await eventually(lambda: store.get("shop", "api-east") == expected, "the mirror to follow the gateway")

    run(test)


def test_a_full_queue_drops_events_then_resyncs() -> None:
    async def test() -> None:
        remote, store = FakeRemote(export("api", 80)), FakeStore()
        c = controller(remote, store, settings=replace(FAST, queue_size=2))
        for i in range(5):  # the worker is not running yet: the queue fills
            c.submit(ServiceUnexported("shop", f"nothing-{i}"))
        assert c.state.dropped == 3
        async with running(c):
            await eventually(lambda: ports(store, "api-east") == [80], "the resync after the overflow")

    run(test)


def test_removing_the_link_deletes_only_its_mirrors() -> None:
    async def test() -> None:
        north = mirror_of(export("db", 5432), "north", GATEWAY)
        web = Service(ObjectMeta("web", "shop"), (("app", "web"),), (ServicePort(80, 8080),))
        remote, store = FakeRemote(export("api", 80)), FakeStore(north, web)
        c = controller(remote, store)
        async with running(c):
            await eventually(lambda: ports(store, "api-east") == [80], "the mirror")
        await c.remove()
        assert store.get("shop", "api-east") is None
        assert store.get("shop", "db-north") == north and store.get("shop", "web") is not None

    run(test)
