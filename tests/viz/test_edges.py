"""Edges from sidecars' counters and the cluster's model: who, which identities, mTLS or not, how much."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from isthmus.model.resources import Pod
from isthmus.viz.admin import AdminReply, PodRef
from isthmus.viz.edges import (
    EDGE_STATS,
    OUTSIDE,
    Edge,
    Peer,
    Unscraped,
    by_deployment,
    in_namespace,
    outbound_service,
    pod_edges,
)
from isthmus.viz.envoy_admin import CLUSTERS
from isthmus.xds.translate import naming
from tests.viz.pages import ref, sidecar
from tests.xds.fixtures import CLIENT, REDIS, REDIS_1, WEB, WEB_1, WEB_2, pod, service, state

WEB_ID = "spiffe://cluster.local/ns/default/sa/web"
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client"
REDIS_ID = "spiffe://cluster.local/ns/default/sa/redis"
WEB_CLUSTER = naming.outbound_cluster(WEB, 80)
WEB_HANDSHAKES = f"cluster.{naming.outbound_stat_prefix(WEB, 80)}.ssl.handshake"
REDIS_TCP = naming.outbound_tcp_cluster(REDIS, 6379)
PLAIN = service("plain", "10.96.0.30", [(80, 8080)])
PLAIN_1 = pod("plain-1", "10.0.0.6", "plain", [8080], injected=False)
OUTSIDER = pod("outsider-1", "10.0.0.7", "outsider", [], injected=False)
SHOP = service("api", "10.96.1.10", [(80, 8080)], namespace="shop")
SHOP_1 = pod("api-1", "10.0.1.1", "api", [8080], namespace="shop")

STATE = state(WEB, REDIS, PLAIN, SHOP, WEB_1, WEB_2, REDIS_1, CLIENT, PLAIN_1, OUTSIDER, SHOP_1)


def peer(p: Pod) -> Peer:
    return Peer(p.namespace, p.deployment, p.name, p.injected)


def client_calls_web() -> AdminReply:
    traffic = {
        (WEB_CLUSTER, WEB_1.ip): {"cx_total": 1, "rq_total": 3, "rq_success": 3},
        (WEB_CLUSTER, WEB_2.ip): {"cx_total": 1, "rq_total": 2, "rq_success": 2},
    }
    return sidecar(STATE, CLIENT, traffic, {WEB_HANDSHAKES: 2}, [CLIENT_ID])


def test_a_meshed_call_is_mtls_with_the_clients_live_identity_and_the_identity_it_required() -> None:
    report = pod_edges(STATE, {ref(CLIENT): client_calls_web()})
    assert report.unscraped == ()
    assert report.edges == (
        Edge(peer(CLIENT), peer(WEB_1), "web", CLIENT_ID, WEB_ID, "mtls", connections=1, requests=3),
        Edge(peer(CLIENT), peer(WEB_2), "web", CLIENT_ID, WEB_ID, "mtls", connections=1, requests=2),
    )


def test_deployments_add_up_their_pods() -> None:
    report = by_deployment(pod_edges(STATE, {ref(CLIENT): client_calls_web()}))
    client, web = Peer("default", "client", ""), Peer("default", "web", "")
    assert report.edges == (Edge(client, web, "web", CLIENT_ID, WEB_ID, "mtls", connections=2, requests=5),)
    assert report.edges[0].as_dict()["destination"] == {
        "namespace": "default",
        "deployment": "web",
        "pod": None,
        "meshed": True,
    }


def test_a_call_to_a_pod_without_a_sidecar_is_plaintext_and_proves_no_identity() -> None:
    traffic = {(naming.outbound_cluster(PLAIN, 80), PLAIN_1.ip): {"cx_total": 1, "rq_total": 4}}
    report = pod_edges(STATE, {ref(CLIENT): sidecar(STATE, CLIENT, traffic, {}, [CLIENT_ID])})
    assert report.edges == (Edge(peer(CLIENT), peer(PLAIN_1), "plain", "", "", "plaintext", 1, 4),)
    assert report.edges[0].as_dict()["mtls"] is False
    assert report.edges[0].as_dict()["destination"]["meshed"] is False  # type: ignore[index]


def test_opaque_tcp_counts_connections_not_requests() -> None:
    handshakes = f"cluster.{naming.outbound_stat_prefix(REDIS, 6379)}|tcp.ssl.handshake"
    # tcp_proxy counts each connection as a "request" of its cluster; that is no HTTP request.
    traffic = {(REDIS_TCP, REDIS_1.ip): {"cx_total": 2, "rq_total": 2}}
    report = pod_edges(STATE, {ref(CLIENT): sidecar(STATE, CLIENT, traffic, {handshakes: 2}, [CLIENT_ID])})
    assert report.edges == (Edge(peer(CLIENT), peer(REDIS_1), "redis", CLIENT_ID, REDIS_ID, "mtls", 2, 0),)


def test_mtls_required_but_never_completed_is_not_called_mtls() -> None:
    traffic = {(WEB_CLUSTER, WEB_1.ip): {"cx_total": 3, "cx_connect_fail": 0}}
    report = pod_edges(STATE, {ref(CLIENT): sidecar(STATE, CLIENT, traffic, {}, [CLIENT_ID])})
    (edge,) = report.edges
    assert (edge.transport, edge.server_id, edge.client_id) == ("mtls-failed", WEB_ID, "")
    assert edge.as_dict()["mtls"] is False


def test_endpoints_without_traffic_make_no_edges() -> None:
    report = pod_edges(STATE, {ref(CLIENT): sidecar(STATE, CLIENT, {}, {}, [CLIENT_ID])})
    assert report.edges == ()


def test_clients_outside_the_mesh_are_counted_by_the_destination_apart_from_the_mesh() -> None:
    unmeshed = naming.inbound_unmeshed_stat_prefix(8080)
    stats = {
        f"http.{unmeshed}.downstream_cx_total": 2,
        f"http.{unmeshed}.downstream_rq_total": 3,
        f"tcp.{unmeshed}.downstream_cx_total": 1,
        # A port nothing declares: passed through, addressed to no service.
        f"tcp.{naming.INBOUND_PASSTHROUGH_CLUSTER}.downstream_cx_total": 4,
        # The mesh's own connections to the same port are no business of this edge.
        f"http.{naming.inbound_stat_prefix(8080)}.downstream_rq_total": 50,
    }
    report = pod_edges(STATE, {ref(WEB_1): sidecar(STATE, WEB_1, {}, stats, [WEB_ID])})
    assert report.edges == (
        Edge(OUTSIDE, peer(WEB_1), "", "", "", "plaintext", connections=4, requests=0),
        Edge(OUTSIDE, peer(WEB_1), "web", "", "", "plaintext", connections=3, requests=3),
    )
    assert OUTSIDE.name == "(unmeshed)"
    assert report.edges[0].as_dict()["source"] == {"namespace": None, "deployment": None, "pod": None, "meshed": False}


def test_a_sidecar_that_cannot_be_read_is_named_and_the_others_still_count() -> None:
    broken = AdminReply(ref(WEB_2), error="connection refused (its Envoy is not running)")
    garbage = AdminReply(ref(REDIS_1), {**client_calls_web().bodies, CLUSTERS: "<html>oops</html>"})
    report = pod_edges(STATE, {ref(CLIENT): client_calls_web(), ref(WEB_2): broken, ref(REDIS_1): garbage})
    assert len(report.edges) == 2
    assert report.unscraped == (
        Unscraped(
            ref(REDIS_1), "its admin API answered something unexpected (/clusters?format=json: the answer is not JSON)"
        ),
        Unscraped(ref(WEB_2), "connection refused (its Envoy is not running)"),
    )


def test_without_the_endpoints_metadata_the_model_says_what_was_required() -> None:
    reply = client_calls_web()
    bodies = {**reply.bodies}
    bodies[next(p for p in bodies if p.startswith("/config_dump"))] = '{"configs": []}'
    report = pod_edges(STATE, {ref(CLIENT): AdminReply(reply.pod, bodies)})
    assert {(e.destination.pod, e.server_id, e.transport) for e in report.edges} == {
        ("web-1", WEB_ID, "mtls"),
        ("web-2", WEB_ID, "mtls"),
    }


def test_a_destination_gone_from_the_model_keeps_the_name_its_sidecar_knew() -> None:
    reply = client_calls_web()
    without_web_2 = state(WEB, REDIS, PLAIN, SHOP, WEB_1, REDIS_1, CLIENT, PLAIN_1)
    report = pod_edges(without_web_2, {ref(CLIENT): reply})
    assert {e.destination for e in report.edges} == {peer(WEB_1), Peer("default", "", "web-2", True)}
    assert {e.destination.name for e in by_deployment(report).edges} == {"web", "web-2"}


def test_a_namespace_keeps_edges_with_either_end_in_it() -> None:
    api = naming.outbound_cluster(SHOP, 80)
    handshakes = f"cluster.{naming.outbound_stat_prefix(SHOP, 80)}.ssl.handshake"
    traffic = {
        (api, SHOP_1.ip): {"cx_total": 1, "rq_total": 1},
        (WEB_CLUSTER, WEB_1.ip): {"cx_total": 1, "rq_total": 1},
    }
    stats = {handshakes: 1, WEB_HANDSHAKES: 1}
    unmeshed = {f"http.{naming.inbound_unmeshed_stat_prefix(8080)}.downstream_rq_total": 1}
    report = pod_edges(
        STATE,
        {
            ref(CLIENT): sidecar(STATE, CLIENT, traffic, stats, [CLIENT_ID]),
            ref(SHOP_1): sidecar(STATE, SHOP_1, {}, unmeshed, ["spiffe://cluster.local/ns/shop/sa/api"]),
        },
    )
    shop = in_namespace(report, "shop").edges
    assert [(e.source.name, e.destination.name) for e in shop] == [("client", "api-1"), ("(unmeshed)", "api-1")]
    assert [e.destination.name for e in in_namespace(report, "default").edges] == ["web-1", "api-1"]


def test_mid_rotation_both_identities_are_shown() -> None:
    old = "spiffe://old.example/ns/default/sa/client"
    reply = sidecar(STATE, CLIENT, {(WEB_CLUSTER, WEB_1.ip): {"cx_total": 1}}, {WEB_HANDSHAKES: 1}, [CLIENT_ID, old])
    (edge,) = pod_edges(STATE, {ref(CLIENT): reply}).edges
    assert edge.client_id == f"{CLIENT_ID}, {old}"


@pytest.mark.parametrize(
    ("svc", "port", "namespace"),
    [
        pytest.param("web", 80, "default", id="http"),
        pytest.param("echo-tcp", 7070, "shop-east", id="dashes"),
        pytest.param("web-east", 8443, "prod", id="mirror-style-name"),
    ],
)
def test_outbound_service_reads_back_what_naming_wrote(svc: str, port: int, namespace: str) -> None:
    address = service(svc, "10.96.0.1", [(port, port)], namespace=namespace)
    assert outbound_service(naming.outbound_cluster(address, port)) == (namespace, svc, False)
    assert outbound_service(naming.outbound_tcp_cluster(address, port)) == (namespace, svc, True)


@pytest.mark.parametrize(
    "name",
    [
        naming.PASSTHROUGH_CLUSTER,
        naming.INBOUND_PASSTHROUGH_CLUSTER,
        naming.inbound_cluster(8080, "http1"),
        "isthmus-xds",
        "outbound|80|web.default.svc.cluster.local|http",
        "outbound|x|web.default.svc.cluster.local",
        "outbound|80|web.svc.cluster.local",
        "outbound|80|example.com",
    ],
)
def test_outbound_service_ignores_other_clusters(name: str) -> None:
    assert outbound_service(name) is None


def test_the_stats_filter_asks_for_exactly_what_edges_read() -> None:
    pattern = re.compile(urllib.parse.parse_qs(urllib.parse.urlsplit(EDGE_STATS).query)["filter"][0])
    wanted = [
        f"cluster.{naming.outbound_stat_prefix(WEB, 80)}.ssl.handshake",
        f"cluster.{naming.outbound_stat_prefix(REDIS, 6379)}|tcp.ssl.handshake",
        f"http.{naming.inbound_unmeshed_stat_prefix(8080)}.downstream_rq_total",
        f"http.{naming.inbound_unmeshed_stat_prefix(8080)}.downstream_cx_total",
        f"tcp.{naming.inbound_unmeshed_stat_prefix(6379)}.downstream_cx_total",
        f"tcp.{naming.INBOUND_PASSTHROUGH_CLUSTER}.downstream_cx_total",
    ]
    unwanted = [
        f"http.{naming.inbound_stat_prefix(8080)}.downstream_rq_total",
        f"cluster.{naming.outbound_stat_prefix(WEB, 80)}.ssl.handshake_extra",
        f"cluster.{naming.outbound_stat_prefix(WEB, 80)}.upstream_cx_total",
        "cluster.passthrough.ssl.handshake",
        "listener.0.0.0.0_4143.ssl.handshake",
    ]
    assert [n for n in wanted if not pattern.search(n)] == []
    assert [n for n in unwanted if pattern.search(n)] == []


def test_pods_not_in_the_model_still_give_their_outbound_edges() -> None:
    stranger = PodRef("west", "default", "client")  # its replies, under a model that no longer lists it
    reply = client_calls_web()
    report = pod_edges(state(WEB, WEB_1, WEB_2), {stranger: AdminReply(stranger, reply.bodies)})
    assert {e.source for e in report.edges} == {Peer("default", "", "client")}
