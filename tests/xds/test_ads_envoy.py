"""The ADS server against a real Envoy: it ACKs what we serve, NACKs a broken listener and keeps serving."""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message

from isthmus.model.mesh import XDS_CLUSTER
from isthmus.proxy.envoy_binary import envoy_path
from isthmus.xds.ads import AdsServer, start_ads_server
from isthmus.xds.cache import SnapshotCache
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from isthmus.xds.status import ProxyStatus, TypeStatus

NODE = "test/default/envoy-1"
WAIT = 20.0  # Envoy starts in well under a second here; this only bounds a hang


def find_envoy() -> str:
    """The one lookup the product uses; a missing Envoy fails the tests instead of skipping them."""
    return envoy_path()


ENVOY = find_envoy()
pytestmark = [pytest.mark.envoy, pytest.mark.skipif(ENVOY is None, reason="no envoy binary")]


def async_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 120))

    return run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def packed(msg: Message) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(msg)
    return a


def bootstrap(ads_socket: Path) -> dict[str, Any]:
    ads = config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )
    b = bootstrap_pb2.Bootstrap()
    b.node.id = NODE
    b.node.cluster = "test"
    b.admin.address.socket_address.address = "127.0.0.1"
    b.admin.address.socket_address.port_value = 0
    dyn = b.dynamic_resources
    dyn.ads_config.api_type = config_source_pb2.ApiConfigSource.GRPC
    dyn.ads_config.transport_api_version = config_source_pb2.V3
    dyn.ads_config.grpc_services.add().envoy_grpc.cluster_name = XDS_CLUSTER
    dyn.cds_config.CopyFrom(ads)
    dyn.lds_config.CopyFrom(ads)
    xds = b.static_resources.clusters.add(name=XDS_CLUSTER, type=cluster_pb2.Cluster.STATIC)
    xds.connect_timeout.seconds = 1
    h2 = http_protocol_options_pb2.HttpProtocolOptions()
    h2.explicit_http_config.http2_protocol_options.SetInParent()
    xds.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].Pack(h2)
    xds.load_assignment.CopyFrom(
        endpoint_pb2.ClusterLoadAssignment(
            cluster_name=XDS_CLUSTER,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(
                                address=address_pb2.Address(pipe=address_pb2.Pipe(path=str(ads_socket)))
                            )
                        )
                    ]
                )
            ],
        )
    )
    return json_format.MessageToDict(b)


def load_assignment(cluster: str, port: int) -> endpoint_pb2.ClusterLoadAssignment:
    lb = endpoint_components_pb2.LbEndpoint()
    lb.endpoint.address.socket_address.address = "127.0.0.1"
    lb.endpoint.address.socket_address.port_value = port
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[lb])]
    )


def static_cluster(name: str, port: int) -> cluster_pb2.Cluster:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    c.connect_timeout.seconds = 1
    c.load_assignment.CopyFrom(load_assignment(name, port))
    return c


def eds_cluster(name: str) -> cluster_pb2.Cluster:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    c.connect_timeout.seconds = 1
    c.eds_cluster_config.eds_config.ads.SetInParent()
    c.eds_cluster_config.eds_config.resource_api_version = config_source_pb2.V3
    return c


def route_config(name: str, body: str) -> route_pb2.RouteConfiguration:
    route = route_components_pb2.Route()
    route.match.prefix = "/"
    route.direct_response.status = 200
    route.direct_response.body.inline_string = body
    return route_pb2.RouteConfiguration(
        name=name, virtual_hosts=[route_components_pb2.VirtualHost(name="all", domains=["*"], routes=[route])]
    )


def http_listener(name: str, port: int, route_name: str) -> listener_pb2.Listener:
    manager = hcm.HttpConnectionManager(stat_prefix=name)
    manager.rds.route_config_name = route_name
    manager.rds.config_source.ads.SetInParent()
    manager.rds.config_source.resource_api_version = config_source_pb2.V3
    manager.http_filters.add(name="envoy.filters.http.router", typed_config=packed(router_pb2.Router()))
    lis = listener_pb2.Listener(name=name)
    lis.address.socket_address.address = "127.0.0.1"
    lis.address.socket_address.port_value = port
    lis.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager").typed_config.Pack(manager)
    return lis


def broken_listener(name: str, port: int) -> listener_pb2.Listener:
    """Serializes fine, but names a network filter no Envoy has, so Envoy's validation rejects it."""
    lis = listener_pb2.Listener(name=name)
    lis.address.socket_address.address = "127.0.0.1"
    lis.address.socket_address.port_value = port
    unknown = any_pb2.Any(type_url="type.googleapis.com/isthmus.test.NoSuchFilter")
    lis.filter_chains.add().filters.add(name="isthmus.test.no_such_filter", typed_config=unknown)
    return lis


def mesh_snapshot(listener: listener_pb2.Listener, body: str, backend_port: int) -> Snapshot:
    return Snapshot(
        {
            CLUSTER: {"static": static_cluster("static", backend_port), "eds": eds_cluster("eds")},
            ENDPOINT: {"eds": load_assignment("eds", backend_port)},
            LISTENER: {listener.name: listener},
            ROUTE: {"direct": route_config("direct", body)},
        }
    )


@contextmanager
def running_envoy(tmp_path: Path, ads_socket: Path) -> Iterator[Path]:
    """Start Envoy on an ADS bootstrap; yields its log file. Always killed, even when the test fails."""
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(bootstrap(ads_socket)))
    log = tmp_path / "envoy.log"
    assert ENVOY is not None
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                ENVOY,
                "-c",
                str(config),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "info",
                "--admin-address-path",
                str(tmp_path / "admin.address"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield log
    finally:
        proc.kill()
        proc.wait(timeout=10)


async def until(what: str, check: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; {tail(log)}")
        await asyncio.sleep(0.05)


def get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def proxy(server: AdsServer) -> ProxyStatus | None:
    return server.status().proxy(NODE)


def connected(server: AdsServer) -> ProxyStatus:
    p = proxy(server)
    assert p is not None, "Envoy is not connected"
    return p


def type_of(server: AdsServer, type_url: str) -> TypeStatus:
    t = connected(server).type(type_url)
    assert t is not None, f"Envoy never requested {type_url}"
    return t


def has_nack(server: AdsServer) -> bool:
    p = proxy(server)
    return p is not None and bool(p.nacks)


def acked(server: AdsServer, snapshot: Snapshot) -> bool:
    """Envoy runs all of `snapshot`: every type in it ACKed at the snapshot's version, nothing rejected."""
    p = proxy(server)
    return p is not None and all(
        (t := p.type(type_url)) is not None and t.in_sync and t.acked_version == snapshot.version(type_url)
        for type_url in snapshot.resources
    )


def tail(log: Path) -> str:
    return "Envoy log tail:\n" + log.read_text(errors="replace")[-4000:]


async def answers(port: int, body: str, log: Path) -> None:
    """Wait until the listener serves `body`: an ACK means accepted, not yet bound (listeners warm)."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            if await asyncio.to_thread(get, port) == (200, body):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"listener never answered {body!r}; {tail(log)}")
        await asyncio.sleep(0.05)


@async_test
async def test_envoy_acks_our_config_nacks_a_broken_listener_and_keeps_serving(tmp_path: Path) -> None:
    ads_socket = tmp_path / "ads.sock"
    cache = SnapshotCache()
    listen, backend = free_port(), free_port()
    good = mesh_snapshot(http_listener("http", listen, "direct"), "hello from isthmus", backend)
    cache.set(NODE, good)
    server = await start_ads_server(cache, f"unix:{ads_socket}")
    try:
        with running_envoy(tmp_path, ads_socket) as log:
            await until("Envoy to ACK all four types", lambda: acked(server, good), log)
            p = proxy(server)
            assert p is not None and p.in_sync and not p.nacks
            assert type_of(server, ENDPOINT).resource_names == ("eds",)
            assert type_of(server, ROUTE).resource_names == ("direct",)
            await answers(listen, "hello from isthmus", log)

            bad = mesh_snapshot(broken_listener("http", listen), "hello from isthmus", backend)
            cache.set(NODE, bad)
            await until("Envoy to NACK the broken listener", lambda: has_nack(server), log)
            p = proxy(server)
            assert p is not None
            lds = p.type(LISTENER)
            assert lds is not None and lds.nack is not None
            assert lds.nack.version == bad.version(LISTENER)
            assert lds.acked_version == good.version(LISTENER)
            assert "isthmus.test.NoSuchFilter" in lds.nack.message, lds.nack.message
            assert server.status().nacks_total[LISTENER] == 1
            assert not p.in_sync
            # The other types were untouched and stay ACKed; the old listener still answers.
            assert all(t.in_sync for t in p.types if t.type_url != LISTENER)
            assert await asyncio.to_thread(get, listen) == (200, "hello from isthmus")

            # The rejected version is not sent again while the listeners stay the same.
            pushes = lds.pushes
            cache.set(NODE, mesh_snapshot(broken_listener("http", listen), "hello from isthmus", backend))
            await asyncio.sleep(0.5)
            assert type_of(server, LISTENER).pushes == pushes

            # A fixed config (with a new route body) goes through, and the NACK clears.
            fixed = mesh_snapshot(http_listener("http", listen, "direct"), "fixed", backend)
            cache.set(NODE, fixed)
            await until("Envoy to ACK the fixed config", lambda: acked(server, fixed), log)
            assert not connected(server).nacks
            await answers(listen, "fixed", log)
    finally:
        await server.stop(1)


@async_test
async def test_envoy_keeps_serving_without_control_plane_and_resyncs(tmp_path: Path) -> None:
    ads_socket = tmp_path / "ads.sock"
    cache = SnapshotCache()
    listen, backend = free_port(), free_port()
    good = mesh_snapshot(http_listener("http", listen, "direct"), "before", backend)
    cache.set(NODE, good)
    server = await start_ads_server(cache, f"unix:{ads_socket}")
    try:
        with running_envoy(tmp_path, ads_socket) as log:
            await until("Envoy to ACK all four types", lambda: acked(server, good), log)
            await answers(listen, "before", log)

            await server.stop(1)
            assert await asyncio.to_thread(get, listen) == (200, "before")

            # A new control plane (fresh state) on the same socket, with changed routes.
            after = mesh_snapshot(http_listener("http", listen, "direct"), "after", backend)
            cache = SnapshotCache()
            cache.set(NODE, after)
            server = await start_ads_server(cache, f"unix:{ads_socket}")
            await until("Envoy to reconnect and ACK", lambda: acked(server, after), log)
            await answers(listen, "after", log)
    finally:
        await server.stop(1)
