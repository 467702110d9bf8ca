"""Flows read from a sidecar's stats page: names, figures, and the change between two readings."""

from __future__ import annotations

import json
import re
import urllib.parse

import pytest

from isthmus.viz.latency import EMPTY, Histogram
from isthmus.viz.traffic import (
    FILTER,
    TRAFFIC_STATS,
    FlowKey,
    StatsFormatError,
    Traffic,
    changes,
    flows_as_dict,
    flows_from_dict,
    flows_from_stats,
    total,
)
from isthmus.xds.translate import naming
from tests.viz.traffic_sample import (
    API_1,
    API_2,
    API_IN,
    API_UNMESHED,
    CALLER,
    LEDGER,
    LEDGER_IN,
    TO_API,
    TO_LEDGER,
    flows,
)
from tests.xds.fixtures import service


@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        pytest.param("inbound|8080", FlowKey("inbound", 8080), id="inbound"),
        pytest.param("inbound|8080|unmeshed", FlowKey("inbound", 8080, unmeshed=True), id="inbound-unmeshed"),
        pytest.param("inbound-passthrough", FlowKey("inbound", 0, unmeshed=True), id="passthrough"),
        pytest.param("outbound|80|api|shop", FlowKey("outbound", 80, "shop", "api"), id="outbound"),
        pytest.param("outbound|80|tcp|tcp", FlowKey("outbound", 80, "tcp", "tcp"), id="names-like-suffixes"),
    ],
)
def test_prefixes_name_flows_both_ways(prefix: str, key: FlowKey) -> None:
    assert FlowKey.parse(prefix) == key
    assert key.prefix == prefix


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("passthrough", id="outbound-passthrough"),
        pytest.param("inbound|8080|http1", id="an-inbound-cluster"),
        pytest.param("inbound|x", id="no-port"),
        pytest.param("inbound|0", id="port-zero"),
        pytest.param("inbound|70000", id="port-too-big"),
        pytest.param("outbound|80|api", id="no-namespace"),
        pytest.param("outbound|80||shop", id="empty-service"),
        pytest.param("isthmus-metrics", id="the-metrics-listener"),
    ],
)
def test_other_prefixes_are_no_flow(prefix: str) -> None:
    assert FlowKey.parse(prefix) is None


@pytest.mark.parametrize(
    ("cluster", "key"),
    [
        pytest.param("inbound|7070|tcp", FlowKey("inbound", 7070), id="inbound"),
        pytest.param("outbound|7070|ledger|shop|tcp", FlowKey("outbound", 7070, "shop", "ledger"), id="outbound"),
        pytest.param("inbound-passthrough", FlowKey("inbound", 0, unmeshed=True), id="passthrough"),
        pytest.param("outbound|80|api|shop", None, id="an-http-cluster"),
        pytest.param("inbound|8080|http2", None, id="an-inbound-http-cluster"),
    ],
)
def test_tcp_clusters_name_the_flow_they_carry(cluster: str, key: FlowKey | None) -> None:
    assert FlowKey.of_tcp_cluster(cluster) == key


def test_the_translation_stage_names_are_flows() -> None:
    svc = service("api", "10.96.0.10", namespace="shop")
    assert FlowKey.parse(naming.outbound_stat_prefix(svc, 80)) == FlowKey("outbound", 80, "shop", "api")
    assert FlowKey.parse(naming.inbound_stat_prefix(8080)) == FlowKey("inbound", 8080)
    assert FlowKey.parse(naming.inbound_unmeshed_stat_prefix(8080)) == FlowKey("inbound", 8080, unmeshed=True)
    tcp = naming.inbound_cluster(7070, "tcp")
    assert FlowKey.of_tcp_cluster(tcp) == FlowKey("inbound", 7070)
    assert FlowKey.of_tcp_cluster(f"{naming.outbound_stat_prefix(svc, 80)}|tcp") == FlowKey(
        "outbound", 80, "shop", "api"
    )


@pytest.mark.parametrize(
    ("name", "wanted"),
    [
        pytest.param("http.inbound|8080.downstream_rq_5xx", True, id="status-class"),
        pytest.param("http.inbound|8080|unmeshed.downstream_rq_time", True, id="request-time"),
        pytest.param("http.outbound|80|api|shop.downstream_cx_active", True, id="open"),
        pytest.param("tcp.outbound|7070|ledger|shop.downstream_cx_rx_bytes_total", True, id="tcp-bytes"),
        pytest.param("tcp.inbound-passthrough.downstream_cx_total", True, id="passthrough"),
        pytest.param("cluster.inbound|7070|tcp.upstream_cx_active", True, id="tcp-open"),
        pytest.param("cluster.outbound|80|api|shop.upstream_cx_active", False, id="http-cluster"),
        pytest.param("http.inbound|8080.downstream_rq_total", False, id="started-not-answered"),
        pytest.param("http.isthmus-metrics.downstream_rq_2xx", False, id="metrics-listener"),
        pytest.param("cluster.isthmus-xds.upstream_cx_active", False, id="xds"),
    ],
)
def test_the_scrape_filter_asks_for_what_flows_are_made_of(name: str, wanted: bool) -> None:
    assert bool(re.search(FILTER, name)) is wanted


def test_the_scrape_path_asks_envoy_for_detailed_bins() -> None:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(TRAFFIC_STATS).query, keep_blank_values=True)
    assert query["histogram_buckets"] == ["detailed"] and query["format"] == ["json"] and query["filter"] == [FILTER]


def test_a_server_page_has_its_inbound_flows() -> None:
    found = flows(API_2)
    assert set(found) == {API_IN, API_UNMESHED}
    mesh = found[API_IN]
    assert (mesh.responses, mesh.failures, mesh.opened, mesh.open) == (323, 65, 1, 1)
    assert (mesh.received, mesh.sent) == (15112, 180763)
    assert mesh.latency.count == 323 and mesh.latency.bins[0] == (40, 1, 20)
    outside = found[API_UNMESHED]
    assert (outside.responses, outside.failures, outside.opened, outside.open, outside.latency.count) == (3, 0, 3, 0, 3)


def test_a_client_page_has_its_outbound_flows_http_and_opaque() -> None:
    found = flows(CALLER)
    assert set(found) == {TO_API, TO_LEDGER}
    api = found[TO_API]
    assert (api.responses, api.failures, api.opened, api.latency.count) == (630, 126, 62, 630)
    assert found[TO_LEDGER] == Traffic(opened=1, received=6, sent=6)


def test_an_opaque_server_counts_connections_and_bytes_only() -> None:
    assert flows(LEDGER) == {LEDGER_IN: Traffic(opened=1, received=6, sent=6)}


def test_open_connections_add_up_over_http_and_opaque_chains() -> None:
    page = {
        "stats": [
            {"name": "http.inbound|8080.downstream_cx_active", "value": 2},
            {"name": "cluster.inbound|8080|tcp.upstream_cx_active", "value": 3},
            {"name": "tcp.inbound|8080.downstream_cx_total", "value": 4},
            {"name": "http.inbound|8080.downstream_cx_total", "value": "5"},
        ]
    }
    assert flows_from_stats(json.dumps(page)) == {API_IN: Traffic(open=5, opened=9)}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<html>", id="not-json"),
        pytest.param("[]", id="not-an-object"),
        pytest.param('{"stats": {}}', id="stats-not-a-list"),
    ],
)
def test_a_page_that_is_not_envoys_is_refused(body: str) -> None:
    with pytest.raises(StatsFormatError):
        flows_from_stats(body)


def test_stats_of_no_flow_are_left_out() -> None:
    page = {"stats": [{"name": "http.isthmus-metrics.downstream_rq_2xx", "value": 7}, {"value": 1}, "junk"]}
    assert flows_from_stats(json.dumps(page)) == {}


def bins(count: int) -> Histogram:
    return Histogram.of([(40, 1, count)])


@pytest.mark.parametrize(
    ("later", "earlier", "expected"),
    [
        pytest.param(
            {API_IN: Traffic(responses=10, failures=2, latency=bins(10), opened=3, open=1, received=5, sent=9)},
            {API_IN: Traffic(responses=4, failures=1, latency=bins(4), opened=1, open=3, received=2, sent=3)},
            {API_IN: Traffic(responses=6, failures=1, latency=bins(6), opened=2, open=1, received=3, sent=6)},
            id="counters-subtract-open-stays",
        ),
        pytest.param(
            {API_IN: Traffic(responses=3, latency=bins(3))},
            {API_IN: Traffic(responses=40, latency=bins(40))},
            {API_IN: Traffic(responses=3, latency=bins(3))},
            id="restarted-counts-from-zero",
        ),
        pytest.param({TO_API: Traffic(responses=5)}, {}, {TO_API: Traffic(responses=5)}, id="new-flow-all-new"),
        pytest.param({}, {TO_API: Traffic(responses=5)}, {}, id="vanished-flow-nothing"),
    ],
)
def test_changes(
    later: dict[FlowKey, Traffic], earlier: dict[FlowKey, Traffic], expected: dict[FlowKey, Traffic]
) -> None:
    assert changes(later, earlier) == expected


def test_wire_form_round_trips() -> None:
    for pod in (API_1, API_2, CALLER, LEDGER):
        assert flows_from_dict(json.loads(json.dumps(flows_as_dict(flows(pod))))) == flows(pod)


def test_total_adds_everything() -> None:
    both = total([Traffic(responses=1, latency=bins(1), open=2), Traffic(responses=2, latency=EMPTY, sent=4)])
    assert both == Traffic(responses=3, latency=bins(1), open=2, sent=4)
