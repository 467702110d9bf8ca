"""The ADS server over a real gRPC connection (Unix socket), with an in-process client playing the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from isthmus.xds.ads import AdsServer, start_ads_server
from isthmus.xds.cache import SnapshotCache
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from isthmus.xds.status import ProxyStatus, TypeStatus

NODE = "west/default/web-1"
WAIT = 5.0  # upper bound for anything that should happen; tests normally pass in milliseconds
QUIET = 0.3  # how long "nothing arrives" is watched for

Request = discovery_pb2.DiscoveryRequest
Response = discovery_pb2.DiscoveryResponse


def async_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in a fresh loop, bounded (no pytest-asyncio here)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 30))

    return run


def snap(
    clusters: tuple[str, ...] = ("a", "b"),
    listeners: tuple[str, ...] = ("l",),
    endpoints: dict[str, int] | None = None,
) -> Snapshot:
    """`endpoints` maps cluster -> a number stored in the assignment, so one assignment's content can change."""
    endpoints = {c: 1 for c in clusters} if endpoints is None else endpoints
    return Snapshot(
        {
            CLUSTER: {c: cluster_pb2.Cluster(name=c) for c in clusters},
            LISTENER: {n: listener_pb2.Listener(name=n) for n in listeners},
            ROUTE: {"r": route_pb2.RouteConfiguration(name="r")},
            ENDPOINT: {
                c: endpoint_pb2.ClusterLoadAssignment(
                    cluster_name=c,
                    policy=endpoint_pb2.ClusterLoadAssignment.Policy(overprovisioning_factor={"value": n}),
                )
                for c, n in endpoints.items()
            },
        }
    )


def names_in(resp: Response) -> list[str]:
    out = []
    for a in resp.resources:
        if a.Is(cluster_pb2.Cluster.DESCRIPTOR):
            c = cluster_pb2.Cluster()
            a.Unpack(c)
            out.append(c.name)
        elif a.Is(endpoint_pb2.ClusterLoadAssignment.DESCRIPTOR):
            e = endpoint_pb2.ClusterLoadAssignment()
            a.Unpack(e)
            out.append(e.cluster_name)
        else:
            lis = listener_pb2.Listener()
            assert a.Unpack(lis)
            out.append(lis.name)
    return out


class FakeProxy:
    """One ADS stream, driven by hand the way Envoy drives it; responses are collected in the background."""

    def __init__(self, channel: grpc.aio.Channel, node_id: str = NODE) -> None:
        self.node_id = node_id
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        self._inbox: asyncio.Queue[Response | BaseException] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.call:
                self._inbox.put_nowait(msg)
        except BaseException as e:  # handed to the test by recv()
            self._inbox.put_nowait(e)

    async def request(
        self,
        type_url: str,
        names: tuple[str, ...] = (),
        *,
        version: str = "",
        nonce: str = "",
        error: str | None = None,
    ) -> None:
        r = Request(type_url=type_url, resource_names=names, version_info=version, response_nonce=nonce)
        r.node.id = self.node_id
        if error is not None:
            r.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        await self.call.write(r)

    async def ack(self, resp: Response, names: tuple[str, ...] = ()) -> None:
        await self.request(resp.type_url, names, version=resp.version_info, nonce=resp.nonce)

    async def nack(self, resp: Response, last_good: str, error: str, names: tuple[str, ...] = ()) -> None:
        await self.request(resp.type_url, names, version=last_good, nonce=resp.nonce, error=error)

    async def recv(self) -> Response:
        msg = await asyncio.wait_for(self._inbox.get(), WAIT)
        if isinstance(msg, BaseException):
            raise msg
        return msg

    async def expect_nothing(self) -> None:
        await asyncio.sleep(QUIET)
        assert self._inbox.empty(), f"unexpected response: {self._inbox.get_nowait()}"


class Mesh:
    """Cache + server + one channel, torn down by the test's context manager."""

    def __init__(self, socket: Path) -> None:
        self.cache = SnapshotCache()
        self.address = f"unix:{socket}"
        self.server: AdsServer
        self.channel: grpc.aio.Channel

    async def __aenter__(self) -> Mesh:
        self.server = await start_ads_server(self.cache, self.address)
        self.channel = grpc.aio.insecure_channel(self.address)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        await self.server.stop(1)

    def proxy_is(self, check: Callable[[ProxyStatus], bool], node_id: str = NODE) -> bool:
        p = self.server.status().proxy(node_id)
        return p is not None and check(p)

    def type_status(self, type_url: str, node_id: str = NODE) -> TypeStatus:
        proxy = self.server.status().proxy(node_id)
        assert proxy is not None
        t = proxy.type(type_url)
        assert t is not None
        return t


async def eventually(check: Callable[[], bool]) -> None:
    """Server-side bookkeeping trails the client's write by a loop turn; wait for it, bounded."""
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@async_test
async def test_subscribe_ack_and_status(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        mesh.cache.set(NODE, snap())
        proxy = FakeProxy(mesh.channel)
        await proxy.request(CLUSTER)
        await proxy.request(LISTENER)
        cds = await proxy.recv()
        lds = await proxy.recv()
        assert (cds.type_url, names_in(cds)) == (CLUSTER, ["a", "b"])
        assert (lds.type_url, names_in(lds)) == (LISTENER, ["l"])
        assert cds.version_info == snap().version(CLUSTER)
        assert cds.nonce != lds.nonce
        await proxy.ack(cds)
        await proxy.ack(lds)
        await eventually(lambda: mesh.proxy_is(lambda p: p.in_sync))
        status = mesh.server.status()
        (p,) = status.proxies
        assert p.node_id == NODE and p.has_snapshot and not p.nacks
        assert [t.short_type for t in p.types] == ["Cluster", "Listener"]
        assert mesh.type_status(CLUSTER).acked_version == cds.version_info
        assert mesh.type_status(LISTENER).last_push is not None
        assert dict(status.pushes_total) == {CLUSTER: 1, LISTENER: 1}


@async_test
async def test_request_is_held_until_the_node_has_a_snapshot(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        proxy = FakeProxy(mesh.channel)
        await proxy.request(CLUSTER)
        await proxy.expect_nothing()
        assert mesh.proxy_is(lambda p: not p.has_snapshot)
        mesh.cache.set("some/other/node", snap())
        await proxy.expect_nothing()
        mesh.cache.set(NODE, snap())
        assert names_in(await proxy.recv()) == ["a", "b"]


@async_test
async def test_nack_is_reported_and_not_resent_until_config_changes(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        mesh.cache.set(NODE, snap(clusters=("a",)))
        proxy = FakeProxy(mesh.channel)
        await proxy.request(CLUSTER)
        await proxy.request(LISTENER)
        good = await proxy.recv()
        await proxy.ack(good)
        await proxy.ack(await proxy.recv())

        mesh.cache.set(NODE, snap(clusters=("a", "bad")))
        bad = await proxy.recv()
        assert names_in(bad) == ["a", "bad"]
        await proxy.nack(bad, good.version_info, "cluster bad: no endpoints")
        await eventually(lambda: mesh.type_status(CLUSTER).nack is not None)
        t = mesh.type_status(CLUSTER)
        assert t.nack is not None
        assert (t.nack.version, t.nack.message) == (bad.version_info, "cluster bad: no endpoints")
        assert (t.sent_version, t.acked_version) == (bad.version_info, good.version_info)
        assert mesh.server.status().nacks_total == {CLUSTER: 1}
        assert mesh.proxy_is(lambda p: p.nacks == (t,))

        # Same rejected clusters again (new object, new listeners): only the listeners move.
        mesh.cache.set(NODE, snap(clusters=("a", "bad"), listeners=("l2",)))
        nxt = await proxy.recv()
        assert (nxt.type_url, names_in(nxt)) == (LISTENER, ["l2"])
        await proxy.expect_nothing()

        mesh.cache.set(NODE, snap(clusters=("a", "fixed"), listeners=("l2",)))
        fixed = await proxy.recv()
        assert (fixed.type_url, names_in(fixed)) == (CLUSTER, ["a", "fixed"])
        await proxy.ack(fixed)
        await eventually(lambda: mesh.type_status(CLUSTER).nack is None)
        assert mesh.type_status(CLUSTER).acked_version == fixed.version_info


@async_test
async def test_stale_nonce_is_ignored(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        mesh.cache.set(NODE, snap(clusters=("a", "b")))
        proxy = FakeProxy(mesh.channel)
        await proxy.request(ENDPOINT, ("a",))
        first = await proxy.recv()
        await proxy.ack(first, ("a",))
        mesh.cache.set(NODE, snap(clusters=("a", "b"), endpoints={"a": 2, "b": 1}))
        second = await proxy.recv()
        # A request still answering the first response widens the subscription: stale, so ignored.
        await proxy.ack(first, ("a", "b"))
        await proxy.expect_nothing()
        assert mesh.type_status(ENDPOINT).resource_names == ("a",)
        await proxy.ack(second, ("a", "b"))
        widened = await proxy.recv()
        assert names_in(widened) == ["a", "b"]


@async_test
async def test_eds_follows_subscription_changes(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        mesh.cache.set(NODE, snap(clusters=("a", "b", "c")))
        proxy = FakeProxy(mesh.channel)
        await proxy.request(ENDPOINT, ("a",))
        r1 = await proxy.recv()
        assert names_in(r1) == ["a"]
        await proxy.ack(r1, ("a", "c"))
        r2 = await proxy.recv()
        assert names_in(r2) == ["a", "c"]
        await proxy.ack(r2, ("a", "c"))
        # b is not subscribed: changing it pushes nothing; changing c does.
        mesh.cache.set(NODE, snap(clusters=("a", "b", "c"), endpoints={"a": 1, "b": 7, "c": 1}))
        await proxy.expect_nothing()
        mesh.cache.set(NODE, snap(clusters=("a", "b", "c"), endpoints={"a": 1, "b": 7, "c": 7}))
        r3 = await proxy.recv()
        assert names_in(r3) == ["a", "c"] and r3.version_info != r2.version_info
        await proxy.ack(r3, ("c",))
        assert names_in(await proxy.recv()) == ["c"]
        assert mesh.type_status(ENDPOINT).resource_names == ("c",)


@async_test
async def test_identical_set_pushes_nothing(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        mesh.cache.set(NODE, snap())
        proxy = FakeProxy(mesh.channel)
        await proxy.request(CLUSTER)
        await proxy.ack(await proxy.recv())
        assert mesh.cache.set(NODE, snap()) is False
        await proxy.expect_nothing()
        assert mesh.server.status().pushes_total == {CLUSTER: 1}


@async_test
async def test_make_before_break_order_when_several_types_change(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        proxy = FakeProxy(mesh.channel)
        for type_url, names in [(LISTENER, ()), (ROUTE, ("r",)), (ENDPOINT, ("a",)), (CLUSTER, ())]:
            await proxy.request(type_url, names)
        await eventually(lambda: mesh.proxy_is(lambda p: len(p.types) == 4))
        mesh.cache.set(NODE, snap())
        got = [(await proxy.recv()).type_url for _ in range(4)]
        assert got == [CLUSTER, ENDPOINT, LISTENER, ROUTE]


@async_test
async def test_disconnect_drops_the_proxy_but_keeps_counters(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        mesh.cache.set(NODE, snap())
        proxy = FakeProxy(mesh.channel)
        await proxy.request(CLUSTER)
        await proxy.recv()
        assert len(mesh.server.status().proxies) == 1
        proxy.call.cancel()
        await eventually(lambda: not mesh.server.status().proxies)
        assert mesh.server.status().pushes_total == {CLUSTER: 1}


@async_test
async def test_first_request_without_node_id_is_refused(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        proxy = FakeProxy(mesh.channel, node_id="")
        await proxy.request(CLUSTER)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await proxy.recv()
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@async_test
async def test_delta_is_unimplemented(tmp_path: Path) -> None:
    async with Mesh(tmp_path / "ads.sock") as mesh:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(mesh.channel).DeltaAggregatedResources()
        # The server may refuse before or after this write lands; either way the call ends UNIMPLEMENTED.
        with contextlib.suppress(grpc.aio.AioRpcError):
            await call.write(discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER))
        assert await asyncio.wait_for(call.code(), WAIT) is grpc.StatusCode.UNIMPLEMENTED
        assert "State-of-the-World" in await call.details()


@async_test
async def test_graceful_stop_ends_streams_promptly(tmp_path: Path) -> None:
    cache = SnapshotCache()
    cache.set(NODE, snap())
    address = f"unix:{tmp_path / 'ads.sock'}"
    server = await start_ads_server(cache, address)
    async with grpc.aio.insecure_channel(address) as channel:
        proxy = FakeProxy(channel)
        await proxy.request(CLUSTER)
        await proxy.recv()
        started = time.monotonic()
        await server.stop(grace=10)
        assert time.monotonic() - started < 5, "stop waited out the grace period"
        assert await asyncio.wait_for(proxy.call.code(), WAIT) is grpc.StatusCode.OK


@async_test
async def test_tcp_address_with_port_zero_reports_the_real_port() -> None:
    cache = SnapshotCache()
    cache.set(NODE, snap())
    server = await start_ads_server(cache, "127.0.0.1:0")
    try:
        assert server.address.startswith("127.0.0.1:") and not server.address.endswith(":0")
        async with grpc.aio.insecure_channel(server.address) as channel:
            proxy = FakeProxy(channel)
            await proxy.request(CLUSTER)
            assert names_in(await proxy.recv()) == ["a", "b"]
    finally:
        await server.stop(1)


@async_test
async def test_a_second_server_cannot_take_over_a_live_address(tmp_path: Path) -> None:
    first = await start_ads_server(SnapshotCache(), f"unix:{tmp_path / 'ads.sock'}")
    tcp = await start_ads_server(SnapshotCache(), "127.0.0.1:0")
    try:
        with pytest.raises(OSError, match="already listening"):
            await start_ads_server(SnapshotCache(), first.address)
        with pytest.raises(OSError, match="cannot listen"):
            await start_ads_server(SnapshotCache(), tcp.address)
    finally:
        await first.stop(1)
        await tcp.stop(1)


@async_test
async def test_a_stale_socket_file_from_a_crash_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "ads.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
    server = await start_ads_server(SnapshotCache(), f"unix:{path}")
    await server.stop(1)
