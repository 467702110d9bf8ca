"""What connections to the pod's own ports become before they reach the app."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from isthmus.model.mesh import INBOUND_PORT, ORIG_PROTO_HEADER, PROXY_MARK
from isthmus.model.resources import ContainerPort
from isthmus.xds.translate import build_sidecar
from tests.xds.fixtures import (
    WEB,
    WEB_1,
    basic_state,
    chain,
    chain_names,
    cluster,
    http_manager,
    inspector_runs_on,
    listener,
    pod,
    route_config,
    route_for,
    service,
    state,
    tcp_proxy,
    upstream_protocol,
)


def test_listener_intercepts_on_inbound_port_with_bounded_detection() -> None:
    lst = listener(build_sidecar(basic_state(), WEB_1), "inbound")
    assert lst.address.socket_address.port_value == INBOUND_PORT
    assert lst.listener_filters[0].name == "envoy.filters.listener.original_dst"
    assert lst.listener_filters_timeout.ToMilliseconds() == 1000
    assert lst.continue_on_listener_filters_timeout


def test_container_port_gets_plaintext_http_and_tcp_chain_for_clients_outside_the_mesh() -> None:
    snap = build_sidecar(basic_state(), WEB_1)
    lst = listener(snap, "inbound")
    http = chain(lst, "inbound|8080|http")
    tcp = chain(lst, "inbound|8080|tcp")
    assert http.filter_chain_match.destination_port.value == 8080
    assert list(http.filter_chain_match.application_protocols) == ["http/1.1", "h2c"]
    for ch in (http, tcp):
        assert ch.filter_chain_match.transport_protocol == "raw_buffer"
        assert not ch.HasField("transport_socket")
    assert http_manager(http).rds.route_config_name == "inbound|8080"
    assert tcp_proxy(tcp).cluster == "inbound|8080|tcp"
    assert inspector_runs_on(lst, 8080)


@pytest.mark.parametrize(
    ("headers", "expected_cluster", "protocol"),
    [
        pytest.param(
            {ORIG_PROTO_HEADER: "HTTP/1.1"}, "inbound|8080|http1", "http1", id="peer-upgraded-an-http1-client"
        ),
        pytest.param({ORIG_PROTO_HEADER: "HTTP/2"}, "inbound|8080|http2", "http2", id="peer-carried-an-http2-client"),
        pytest.param({}, "inbound|8080", "downstream", id="client-outside-the-mesh"),
        pytest.param({ORIG_PROTO_HEADER: "HTTP/3"}, "inbound|8080", "downstream", id="unknown-value-is-ignored"),
    ],
)
def test_inbound_speaks_the_original_clients_protocol(
    headers: dict[str, str], expected_cluster: str, protocol: str
) -> None:
    snap = build_sidecar(basic_state(), WEB_1)
    rc = route_config(snap, "inbound|8080")
    assert route_for(rc, headers) == expected_cluster
    c = cluster(snap, expected_cluster)
    assert upstream_protocol(c) == protocol
    assert c.type == cluster_pb2.Cluster.ORIGINAL_DST
    assert c.upstream_bind_config.socket_options[0].int_value == PROXY_MARK


def test_app_never_sees_the_protocol_header_and_requests_have_no_timeout() -> None:
    (vhost,) = route_config(build_sidecar(basic_state(), WEB_1), "inbound|8080").virtual_hosts
    assert ORIG_PROTO_HEADER in vhost.request_headers_to_remove
    assert ORIG_PROTO_HEADER not in [h.header.key for h in vhost.request_headers_to_add]
    assert all(r.route.HasField("timeout") and r.route.timeout.ToMilliseconds() == 0 for r in vhost.routes)


def test_opaque_container_port_gets_only_tcp() -> None:
    redis = pod("redis-1", "10.0.0.5", "redis", [6379, 8080], opaque="6379")
    snap = build_sidecar(state(redis), redis)
    lst = listener(snap, "inbound")
    assert "inbound|6379|http" not in chain_names(lst)
    assert tcp_proxy(chain(lst, "inbound|6379|tcp")).cluster == "inbound|6379|tcp"
    assert upstream_protocol(cluster(snap, "inbound|6379|tcp")) == "none"
    assert not inspector_runs_on(lst, 6379)
    assert inspector_runs_on(lst, 8080)


def test_undeclared_port_passes_through_without_detection() -> None:
    snap = build_sidecar(basic_state(), WEB_1)
    lst = listener(snap, "inbound")
    assert tcp_proxy(lst.default_filter_chain).cluster == "inbound-passthrough"
    assert cluster(snap, "inbound-passthrough").type == cluster_pb2.Cluster.ORIGINAL_DST
    assert not inspector_runs_on(lst, 9999)


def test_port_a_service_targets_gets_an_http_chain_even_if_undeclared() -> None:
    # Peers upgrade to HTTP/2 towards it; without an HTTP chain the app would get h2c it may not speak.
    bare = pod("web-1", "10.0.0.1", "web", ports=[])
    snap = build_sidecar(state(service("web", "10.96.0.10", [(80, 8080)]), bare), bare)
    assert "inbound|8080|http" in chain_names(listener(snap, "inbound"))


@pytest.mark.parametrize(
    "ports",
    [
        pytest.param([ContainerPort(8080), ContainerPort(8080, "again")], id="port-declared-twice"),
        pytest.param([ContainerPort(8080), ContainerPort(8080, protocol="UDP")], id="same-port-udp"),
        pytest.param([ContainerPort(8080), ContainerPort(4191), ContainerPort(4143)], id="sidecar-ports"),
    ],
)
def test_inbound_chains_are_unique_and_only_for_app_tcp_ports(ports: list[ContainerPort]) -> None:
    p = pod("odd", "10.0.0.1", "odd", ports)
    lst = listener(build_sidecar(state(p), p), "inbound")
    app_chains = {c.name for c in lst.filter_chains if not c.name.startswith("loop-guard")}
    assert app_chains == {f"inbound|8080|{kind}" for kind in ("mtls-http", "mtls-tcp", "http", "tcp", "tls")}
    matches = [c.filter_chain_match.SerializeToString(deterministic=True) for c in lst.filter_chains]
    assert len(matches) == len(set(matches))


def test_inbound_only_depends_on_the_pod_itself() -> None:
    other = build_sidecar(state(WEB, WEB_1), WEB_1)
    more = build_sidecar(basic_state(), WEB_1)
    assert listener(other, "inbound") == listener(more, "inbound")
