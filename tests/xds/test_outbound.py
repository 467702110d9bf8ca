"""What the app's outbound connections become: chains per service VIP port, EDS clusters, routes."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2

from isthmus.model.mesh import ORIG_PROTO_HEADER, OUTBOUND_PORT, PROXY_MARK
from isthmus.model.resources import ContainerPort, Pod, ServiceAddress
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from isthmus.xds.translate import build_sidecar
from tests.xds.fixtures import (
    CLIENT,
    REDIS_CLUSTER,
    REDIS_TCP_CLUSTER,
    WEB,
    WEB_1,
    WEB_CLUSTER,
    WEB_TCP_CLUSTER,
    basic_state,
    chain,
    chain_names,
    cluster,
    endpoint_addresses,
    http_manager,
    inspector_runs_on,
    listener,
    load_assignment,
    pod,
    route_config,
    service,
    state,
    tcp_proxy,
    upstream_protocol,
)


def outbound(*extra: ServiceAddress | Pod) -> tuple[Snapshot, listener_pb2.Listener]:
    snap = build_sidecar(basic_state(*extra), CLIENT)
    return snap, listener(snap, "outbound")


def test_listener_intercepts_on_outbound_port_with_bounded_detection() -> None:
    snap = build_sidecar(basic_state(), CLIENT)
    lst = listener(snap, "outbound")
    assert lst.address.socket_address.port_value == OUTBOUND_PORT
    assert [f.name for f in lst.listener_filters] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.http_inspector",
    ]
    assert lst.listener_filters_timeout.ToMilliseconds() == 1000
    assert lst.continue_on_listener_filters_timeout


def test_detect_timeout_comes_from_settings() -> None:
    snap = build_sidecar(state(WEB, WEB_1, CLIENT, detect_timeout_ms=250), CLIENT)
    assert listener(snap, "outbound").listener_filters_timeout.ToMilliseconds() == 250


def test_http_service_port_gets_http_and_tcp_chain_to_their_own_clusters() -> None:
    snap, lst = outbound()
    http = chain(lst, f"{WEB_CLUSTER}|http")
    tcp = chain(lst, f"{WEB_CLUSTER}|tcp")
    for ch in (http, tcp):
        assert ch.filter_chain_match.destination_port.value == 80
        assert [(r.address_prefix, r.prefix_len.value) for r in ch.filter_chain_match.prefix_ranges] == [
            ("10.96.0.10", 32)
        ]
    assert list(http.filter_chain_match.application_protocols) == ["http/1.1", "h2c"]
    assert not tcp.filter_chain_match.application_protocols
    # Its own cluster: mTLS to a peer sidecar says in ALPN whether it carries HTTP or TCP.
    assert tcp_proxy(tcp).cluster == WEB_TCP_CLUSTER
    assert inspector_runs_on(lst, 80)

    manager = http_manager(http)
    assert manager.rds.route_config_name == WEB_CLUSTER
    assert manager.rds.config_source.HasField("ads")
    (vhost,) = route_config(snap, WEB_CLUSTER).virtual_hosts
    (route,) = vhost.routes
    assert route.match.prefix == "/"
    assert route.route.cluster == WEB_CLUSTER
    assert route.route.HasField("timeout") and route.route.timeout.ToMilliseconds() == 0


def test_opaque_port_gets_only_tcp_and_no_protocol_detection() -> None:
    snap, lst = outbound()
    assert f"{REDIS_CLUSTER}|tcp" in chain_names(lst)
    assert f"{REDIS_CLUSTER}|http" not in chain_names(lst)
    assert tcp_proxy(chain(lst, f"{REDIS_CLUSTER}|tcp")).cluster == REDIS_TCP_CLUSTER
    assert not inspector_runs_on(lst, 6379)
    assert REDIS_CLUSTER not in snap.of_type(ROUTE)
    # Nothing would route to an HTTP cluster; the TCP one reads the port's endpoints.
    assert REDIS_CLUSTER not in snap.of_type(CLUSTER)
    assert upstream_protocol(cluster(snap, REDIS_TCP_CLUSTER)) == "none"
    assert cluster(snap, REDIS_TCP_CLUSTER).eds_cluster_config.service_name == REDIS_CLUSTER
    assert REDIS_CLUSTER in snap.of_type(ENDPOINT)


def test_port_opaque_for_one_service_is_opaque_on_every_vip() -> None:
    # http_inspector can only be switched off per port, not per VIP.
    other = service("cache", "10.96.0.30", [(6379, 6379)])
    cache_pod = pod("cache-1", "10.0.0.7", "cache", [6379])
    _, lst = outbound(other, cache_pod)
    cache = "outbound|6379|cache.default.svc.cluster.local"
    assert f"{cache}|http" not in chain_names(lst)
    assert f"{cache}|tcp" in chain_names(lst)


def test_ports_without_service_are_not_inspected() -> None:
    _, lst = outbound()
    assert not inspector_runs_on(lst, 3306)


def test_anything_else_passes_through_to_original_destination() -> None:
    snap, lst = outbound()
    assert tcp_proxy(lst.default_filter_chain).cluster == "passthrough"
    assert cluster(snap, "passthrough").type == cluster_pb2.Cluster.ORIGINAL_DST


@pytest.mark.parametrize("port", [4140, 4143])
def test_connections_to_the_sidecars_own_ports_are_closed_not_looped(port: int) -> None:
    _, lst = outbound()
    guards = [c for c in lst.filter_chains if c.filter_chain_match.destination_port.value == port]
    assert len(guards) == 1 and not guards[0].filter_chain_match.prefix_ranges
    assert not guards[0].filters


@pytest.mark.parametrize("name", [WEB_CLUSTER, WEB_TCP_CLUSTER])
def test_service_clusters_are_eds_least_request_and_marked(name: str) -> None:
    snap, _ = outbound()
    c = cluster(snap, name)
    assert c.type == cluster_pb2.Cluster.EDS
    assert c.eds_cluster_config.eds_config.HasField("ads")
    # Both clusters of a port read one assignment, so EDS sends its endpoints once.
    assert c.eds_cluster_config.service_name == WEB_CLUSTER
    assert c.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    assert c.connect_timeout.ToMilliseconds() == 1000
    assert c.upstream_bind_config.source_address.address == "0.0.0.0"
    (opt,) = c.upstream_bind_config.socket_options
    assert (opt.level, opt.name, opt.int_value) == (1, 36, PROXY_MARK)
    assert "." not in c.alt_stat_name


def test_tcp_cluster_speaks_no_http_and_counts_apart() -> None:
    snap, _ = outbound()
    tcp = cluster(snap, WEB_TCP_CLUSTER)
    assert upstream_protocol(tcp) == "none"
    assert tcp.alt_stat_name == f"{cluster(snap, WEB_CLUSTER).alt_stat_name}|tcp"


@pytest.mark.parametrize(
    ("web2_injected", "protocol", "header_action"),
    [
        pytest.param(True, "http2", "set", id="all-meshed-upgrades-to-h2"),
        pytest.param(False, "downstream", "remove", id="one-unmeshed-keeps-client-protocol"),
    ],
)
def test_upgrade_to_http2_only_when_every_endpoint_is_meshed(
    web2_injected: bool, protocol: str, header_action: str
) -> None:
    web2 = pod("web-2", "10.0.0.2", "web", [ContainerPort(8080, "http")], injected=web2_injected)
    snap = build_sidecar(state(WEB, WEB_1, web2, CLIENT), CLIENT)
    assert upstream_protocol(cluster(snap, WEB_CLUSTER)) == protocol
    (vhost,) = route_config(snap, WEB_CLUSTER).virtual_hosts
    if header_action == "set":
        (add,) = vhost.request_headers_to_add
        assert (add.header.key, add.header.value) == (ORIG_PROTO_HEADER, "%PROTOCOL%")
        assert add.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    else:
        assert list(vhost.request_headers_to_remove) == [ORIG_PROTO_HEADER]
        assert not vhost.request_headers_to_add


def test_replicas_are_endpoints_and_not_ready_ones_are_left_out() -> None:
    web3 = pod("web-3", "10.0.0.3", "web", [ContainerPort(8080, "http")], ready=False)
    snap, _ = outbound(web3)
    cla = load_assignment(snap, WEB_CLUSTER)
    assert endpoint_addresses(cla) == ["10.0.0.1:8080", "10.0.0.2:8080"]
    first = cla.endpoints[0].lb_endpoints[0].metadata.filter_metadata["isthmus"]
    assert dict(first) == {"meshed": True, "pod": "web-1"}


def test_service_without_ready_endpoints_has_an_empty_assignment() -> None:
    down = pod("web-1", "10.0.0.1", "web", [ContainerPort(8080, "http")], ready=False)
    snap = build_sidecar(state(WEB, down, CLIENT), CLIENT)
    assert endpoint_addresses(load_assignment(snap, WEB_CLUSTER)) == []


@pytest.mark.parametrize(
    ("services", "expected_clusters"),
    [
        pytest.param(
            [service("web", "10.96.0.10", [(80, 8080)]), service("zeta", "10.96.0.10", [(80, 8080)], app="web")],
            {WEB_CLUSTER},
            id="two-services-share-vip-and-port",
        ),
        pytest.param(
            [service("web", "10.96.0.10", [(80, 8080), (80, 8081)])],
            {WEB_CLUSTER},
            id="port-listed-twice",
        ),
        pytest.param(
            [service("web", "None", [(80, 8080)]), service("db", "", [(5432, 5432)])],
            set(),
            id="headless-services-have-no-vip",
        ),
        pytest.param(
            [service("dns", "10.96.0.53", [(53, 53, "UDP"), (53, 53, "TCP")], app="web")],
            {"outbound|53|dns.default.svc.cluster.local"},
            id="udp-port-skipped-tcp-kept",
        ),
        pytest.param(
            [service("web", "10.96.0.10", [(80, 8080)]), service("web6", "fd00::10", [(80, 8080)], app="web")],
            {WEB_CLUSTER, "outbound|80|web6.default.svc.cluster.local"},
            id="ipv6-vip",
        ),
    ],
)
def test_filter_chain_matches_stay_unique(services: list[ServiceAddress], expected_clusters: set[str]) -> None:
    snap = build_sidecar(state(*services, WEB_1, CLIENT), CLIENT)
    lst = listener(snap, "outbound")
    matches = [c.filter_chain_match.SerializeToString(deterministic=True) for c in lst.filter_chains]
    assert len(matches) == len(set(matches))
    service_clusters = {n for n in snap.of_type(CLUSTER) if n.startswith("outbound|")}
    assert service_clusters == expected_clusters | {f"{n}|tcp" for n in expected_clusters}
    assert set(snap.of_type(ENDPOINT)) == expected_clusters


def test_all_service_ports_of_all_namespaces_are_reachable() -> None:
    other_ns = service("api", "10.96.1.1", [(8080, 8080), (9090, 9090)], namespace="prod")
    snap, _ = outbound(other_ns)
    assert {"outbound|8080|api.prod.svc.cluster.local", "outbound|9090|api.prod.svc.cluster.local"} <= set(
        snap.of_type(CLUSTER)
    )


def test_pod_without_sidecar_gets_no_config() -> None:
    bare = pod("legacy", "10.0.0.8", "legacy", injected=False)
    with pytest.raises(ValueError, match="no sidecar"):
        build_sidecar(basic_state(bare), bare)


def test_sidecar_has_exactly_an_outbound_and_an_inbound_listener() -> None:
    snap, _ = outbound()
    assert set(snap.of_type(LISTENER)) == {"outbound", "inbound"}
