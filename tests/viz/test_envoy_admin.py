"""Parsing Envoy's admin pages: pages captured from the mesh's own sidecars, and what is not such a page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from isthmus.viz.edges import EDGE_STATS
from isthmus.viz.envoy_admin import (
    CERTS,
    CLUSTERS,
    ENDPOINTS,
    AdminFormatError,
    EndpointMetadata,
    parse_certs,
    parse_clusters,
    parse_endpoints,
    parse_stats,
    stats_path,
)

SAMPLE = Path(__file__).parent / "samples" / "local_scrape.json"


def captured() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


def client_pages() -> dict[str, str]:
    replies: dict[str, dict[str, str]] = captured()["replies"]
    return next(pages for pod, pages in replies.items() if pod.startswith("default/client-"))


def test_clusters_page_gives_each_hosts_counters() -> None:
    clusters = {c.name: c for c in parse_clusters(client_pages()[CLUSTERS])}
    web = clusters["outbound|80|web.default.svc.cluster.local"]
    assert web.stat_name == "outbound|80|web|default"
    assert web.eds_name == "outbound|80|web.default.svc.cluster.local"
    assert sum(h.count("rq_total") for h in web.hosts) == 5
    assert sum(h.count("cx_total") for h in web.hosts) == 2
    assert {h.port for h in web.hosts} == {8080}
    tcp = clusters["outbound|7070|echo-tcp.default.svc.cluster.local|tcp"]
    assert tcp.eds_name == "outbound|7070|echo-tcp.default.svc.cluster.local"
    assert [h.count("cx_total") for h in tcp.hosts] == [1]
    # The xDS server's Unix socket is not a host of anybody's pod.
    assert clusters["isthmus-xds"].hosts == ()


def test_stats_page_gives_counters_by_name() -> None:
    stats = parse_stats(client_pages()[EDGE_STATS])
    assert stats == {
        "cluster.outbound|7070|echo-tcp|default|tcp.ssl.handshake": 1,
        "cluster.outbound|80|web|default.ssl.handshake": 2,
    }


def test_histograms_are_left_out_of_stats() -> None:
    page = {"stats": [{"name": "a", "value": 1}, {"histograms": {"supported_quantiles": [50]}}]}
    assert parse_stats(json.dumps(page)) == {"a": 1}


def test_certs_page_gives_the_workload_identity_not_the_anchors() -> None:
    assert parse_certs(client_pages()[CERTS]).uris == ("spiffe://cluster.local/ns/default/sa/default",)


def test_endpoints_page_gives_each_endpoints_pod_and_required_identity() -> None:
    endpoints = parse_endpoints(client_pages()[ENDPOINTS])
    web = {k: v for k, v in endpoints.items() if k[0] == "outbound|80|web.default.svc.cluster.local"}
    assert len(web) == 2
    assert {m.identity for m in web.values()} == {"spiffe://cluster.local/ns/default/sa/web"}
    assert all(m.pod and m.pod.startswith("web-") and m.meshed for m in web.values())
    (plain,) = [v for k, v in endpoints.items() if k[0] == "outbound|80|plain.default.svc.cluster.local"]
    assert plain.identity is None and plain.meshed is False and plain.pod and plain.pod.startswith("plain-")


def test_stats_path_encodes_its_filter() -> None:
    assert stats_path("^a|b$") == "/stats?format=json&usedonly=&filter=%5Ea%7Cb%24"


@pytest.mark.parametrize(
    ("parse", "body", "problem"),
    [
        pytest.param(parse_clusters, "<html>", "/clusters?format=json: the answer is not JSON", id="clusters-html"),
        pytest.param(parse_clusters, '{"cluster_statuses": {}}', "no cluster_statuses list", id="clusters-shape"),
        pytest.param(parse_clusters, '{"cluster_statuses": [{}]}', "a cluster status without a name", id="no-name"),
        pytest.param(parse_stats, "a.b: 1\n", "/stats: the answer is not JSON", id="stats-text-format"),
        pytest.param(parse_stats, "[]", "no stats list", id="stats-shape"),
        pytest.param(parse_certs, '{"certificates": 3}', "no certificates list", id="certs-shape"),
        pytest.param(parse_endpoints, '"configs"', "no configs list", id="endpoints-shape"),
    ],
)
def test_what_is_not_the_page_is_named_as_such(parse: Any, body: str, problem: str) -> None:
    with pytest.raises(AdminFormatError, match=problem.replace("?", r"\?")):
        parse(body)


def test_an_empty_admin_api_has_nothing_to_say() -> None:
    assert parse_clusters("{}") == []
    assert parse_certs("{}").uris == ()
    assert parse_endpoints("{}") == {}


def test_endpoint_metadata_may_be_missing() -> None:
    page = {"configs": [{"endpoint_config": {"cluster_name": "x", "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}}
    ]}]}}]}  # fmt: skip
    assert parse_endpoints(json.dumps(page)) == {("x", "10.0.0.1", 80): EndpointMetadata(None, None, None)}
