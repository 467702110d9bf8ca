"""The control plane's own metrics: Prometheus text, what goes into it, the ADS push-to-ACK timing, and
the endpoint that serves it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import MappingProxyType

import grpc
import pytest

from isthmus.viz.collector import CollectorStats
from isthmus.viz.controlplane_metrics import ControlPlaneFigures, families
from isthmus.viz.metrics_server import respond, serve_metrics
from isthmus.viz.prometheus_text import CONTENT_TYPE, histogram, render, simple
from isthmus.xds.ads import ACK_BUCKETS, start_ads_server
from isthmus.xds.cache import SnapshotCache
from isthmus.xds.snapshot import CLUSTER, LISTENER
from isthmus.xds.status import AdsStatus, Nack, ProxyStatus, TypeStatus
from tests.xds.test_ads import NODE, FakeProxy, async_test, eventually, snap

# One line of the text format: a comment, or a series with optional labels and a value.
LINE = re.compile(
    r'^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? '
    r"(-?[0-9.e+-]+|\+Inf|-Inf|NaN))$"
)


def test_text_format() -> None:
    text = render(
        [
            simple("a_total", "counter", "Says\\what\nit is.", [({"cluster": 'we"st'}, 3), ({"cluster": "east"}, 0.5)]),
            histogram("b_seconds", "How long.", {"cluster": "west"}, [(0.5, 1), (float("inf"), 3)], 2.25),
        ]
    )
    assert text == (
        "# HELP a_total Says\\\\what\\nit is.\n"
        "# TYPE a_total counter\n"
        'a_total{cluster="we\\"st"} 3\n'
        'a_total{cluster="east"} 0.5\n'
        "# HELP b_seconds How long.\n"
        "# TYPE b_seconds histogram\n"
        'b_seconds_bucket{cluster="west",le="0.5"} 1\n'
        'b_seconds_bucket{cluster="west",le="+Inf"} 3\n'
        'b_seconds_sum{cluster="west"} 2.25\n'
        'b_seconds_count{cluster="west"} 3\n'
    )
    assert all(LINE.match(line) for line in text.splitlines())


def proxy(node: str, in_sync: bool, nack: bool = False) -> ProxyStatus:
    version = "v1" if in_sync else None
    t = TypeStatus(
        type_url=CLUSTER,
        wildcard=True,
        resource_names=(),
        sent_version="v1",
        acked_version=version,
        nack=Nack("v2", "bad", 1.0) if nack else None,
        last_push=1.0,
        pushes=1,
        nacks=1 if nack else 0,
    )
    return ProxyStatus(node, 0.0, (t,), has_snapshot=True)


FIGURES = ControlPlaneFigures(
    cluster="west",
    ads=AdsStatus(
        (proxy("west/a/1", True), proxy("west/a/2", False), proxy("west/a/3", False, nack=True)),
        MappingProxyType({CLUSTER: 7, LISTENER: 3}),
        MappingProxyType({CLUSTER: 1}),
    ),
    push_to_ack=((0.01, 4), (0.1, 6), (float("inf"), 6)),
    push_to_ack_seconds=0.125,
    certificates_issued=5,
    requests_refused={403: 2},
    collector=CollectorStats(sweeps=12, failed_sweeps=1, last_sweep_seconds=0.02, read=2, unreadable=1),
)


@pytest.mark.parametrize(
    "series",
    [
        pytest.param('isthmus_xds_proxies_connected{cluster="west"} 3', id="connected"),
        pytest.param('isthmus_xds_proxies_in_sync{cluster="west"} 1', id="in-sync"),
        pytest.param('isthmus_xds_proxies_rejecting{cluster="west"} 1', id="rejecting"),
        pytest.param('isthmus_xds_pushes_total{cluster="west",type="Cluster"} 7', id="pushes"),
        pytest.param('isthmus_xds_nacks_total{cluster="west",type="Cluster"} 1', id="nacks"),
        pytest.param('isthmus_xds_nacks_total{cluster="west",type="Listener"} 0', id="no-nacks"),
        pytest.param('isthmus_xds_push_to_ack_seconds_bucket{cluster="west",le="0.01"} 4', id="push-latency"),
        pytest.param('isthmus_xds_push_to_ack_seconds_count{cluster="west"} 6', id="push-count"),
        pytest.param('isthmus_identity_certificates_issued_total{cluster="west"} 5', id="certificates"),
        pytest.param('isthmus_identity_requests_refused_total{cluster="west",status="403"} 2', id="refused"),
        pytest.param('isthmus_viz_sweeps_total{cluster="west",result="failed"} 1', id="sweeps"),
        pytest.param('isthmus_viz_sidecars{cluster="west",state="unreadable"} 1', id="unreadable"),
    ],
)
def test_the_control_plane_figures_become_series(series: str) -> None:
    assert series in render(families(FIGURES)).splitlines()


def test_every_line_is_valid_text_format() -> None:
    text = render(families(FIGURES))
    assert [line for line in text.splitlines() if not LINE.match(line)] == []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@async_test
async def test_the_ads_server_times_each_push_to_its_ack_once(tmp_path: Path) -> None:
    clock, cache = Clock(), SnapshotCache()
    address = f"unix:{tmp_path / 'ads.sock'}"
    server = await start_ads_server(cache, address, clock)
    channel = grpc.aio.insecure_channel(address)
    try:
        cache.set(NODE, snap())
        proxy = FakeProxy(channel)
        await proxy.request(CLUSTER)
        cds = await proxy.recv()
        clock.now += 0.02
        await proxy.ack(cds)
        await eventually(lambda: server.push_to_ack().buckets[-1][1] == 1)
        # The same nonce again (as Envoy sends on a subscription change) is no second ACK.
        clock.now += 3
        await proxy.ack(cds)
        # The server reads a stream in order: once it answers this, it has handled that ACK.
        await proxy.request(LISTENER)
        await proxy.recv()
        timing = server.push_to_ack()
        assert dict(timing.buckets)[0.025] == 1 and dict(timing.buckets)[0.01] == 0
        assert timing.buckets[-1] == (float("inf"), 1) and timing.total == pytest.approx(0.02)
        assert [b for b, _ in timing.buckets[:-1]] == list(ACK_BUCKETS)
    finally:
        await channel.close()
        await server.stop(1)


@pytest.mark.parametrize(
    ("line", "status"),
    [
        pytest.param("GET /metrics HTTP/1.1", "200 OK", id="metrics"),
        pytest.param("GET /metrics?x=1 HTTP/1.0", "200 OK", id="query-ignored"),
        pytest.param("GET / HTTP/1.1", "404 Not Found", id="other-path"),
        pytest.param("POST /metrics HTTP/1.1", "405 Method Not Allowed", id="post"),
        pytest.param("garbage", "400 Bad Request", id="garbage"),
    ],
)
def test_respond(line: str, status: str) -> None:
    assert respond(line, lambda: "x 1\n").startswith(f"HTTP/1.1 {status}\r\n".encode())


def test_head_has_no_body() -> None:
    answer = respond("HEAD /metrics HTTP/1.1", lambda: "x 1\n")
    assert answer.endswith(b"\r\n\r\n") and b"Content-Length: 4" in answer


@async_test
async def test_the_endpoint_serves_the_page_on_a_unix_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "metrics.sock"
    server = await serve_metrics(f"unix:{socket_path}", lambda: render(families(FIGURES)))
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and f"Content-Type: {CONTENT_TYPE}".encode() in head
    assert body.decode() == render(families(FIGURES))
