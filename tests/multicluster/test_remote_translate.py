"""A mirror service in the caller's sidecar config: the VIP chain of a local service, a cluster
that opens the caller's mTLS with the remote backend into an internal listener, and that
listener's outer mTLS to the remote gateway; and the real Envoy accepts it."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.listener.v3 import listener_pb2

from isthmus.model.index import ClusterState
from isthmus.model.mesh import (
    ALPN_HTTP,
    ALPN_TCP,
    MIRROR_CLUSTER_LABEL,
    MIRROR_GATEWAY_ALIVE_ANNOTATION,
    MIRROR_GATEWAY_ANNOTATION,
    MIRROR_GATEWAY_IDENTITY_ANNOTATION,
    MIRROR_IDENTITIES_ANNOTATION,
    MIRROR_LABEL,
    node_id,
)
from isthmus.model.resources import ANNOTATION_OPAQUE_PORTS, ObjectMeta, Service, ServiceAddress, ServicePort
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.xds.snapshot import LISTENER, Snapshot
from isthmus.xds.translate import build_sidecar
from isthmus.xds.translate.gateway import exported_ports
from isthmus.xds.translate.remote import remote_target
from tests.xds.certs import TestMesh, write_identity
from tests.xds.envoy_config import find_envoy, validate, with_snapshot
from tests.xds.fixtures import (
    CLIENT,
    basic_state,
    cluster,
    http_manager,
    listener,
    load_assignment,
    route_config,
    tcp_proxy,
    upstream_protocol,
    upstream_tls,
)

GATEWAY_ID = "spiffe://cluster.local/ns/isthmus-multicluster/sa/isthmus-gateway"
API_ID = "spiffe://cluster.local/ns/shop/sa/default"
CANARY_ID = "spiffe://cluster.local/ns/shop/sa/canary"
HOST = "api-east.shop.svc.cluster.local"
HTTP_CLUSTER = f"outbound|80|{HOST}"
DB_CLUSTER = f"outbound|5432|{HOST}|tcp"


def mirror(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> ServiceAddress:
    base = {
        MIRROR_GATEWAY_ANNOTATION: "172.31.255.130:4143",
        MIRROR_GATEWAY_IDENTITY_ANNOTATION: GATEWAY_ID,
        MIRROR_IDENTITIES_ANNOTATION: f"{API_ID}, {CANARY_ID}",
        ANNOTATION_OPAQUE_PORTS: "5432",
    }
    meta = ObjectMeta(
        "api-east",
        "shop",
        labels=tuple({MIRROR_LABEL: "true", MIRROR_CLUSTER_LABEL: "east", **(labels or {})}.items()),
        annotations=tuple({**base, **(annotations or {})}.items()),
    )
    ports = (ServicePort(80, 80), ServicePort(5432, 5432))
    return ServiceAddress(Service(meta, (), ports), cluster_ip="10.96.0.77", cluster="west")


def snapshot(*extra: ServiceAddress) -> Snapshot:
    return build_sidecar(basic_state(*extra), CLIENT, "/id")


def test_a_mirror_is_read_from_its_labels_and_annotations() -> None:
    target = remote_target(mirror())
    assert target is not None
    assert (target.cluster_name, target.service, target.namespace) == ("east", "api", "shop")
    assert (target.gateway_ip, target.gateway_port, target.gateway_identity) == ("172.31.255.130", 4143, GATEWAY_ID)
    assert target.identities == (CANARY_ID, API_ID)
    assert target.sni(80) == "80.api.shop.svc.cluster.local"


@pytest.mark.parametrize(
    "annotations",
    [
        pytest.param({MIRROR_GATEWAY_ANNOTATION: "nowhere:4143"}, id="gateway-not-an-ip"),
        pytest.param({MIRROR_GATEWAY_ANNOTATION: "172.31.255.130:0"}, id="gateway-port-zero"),
        pytest.param({MIRROR_GATEWAY_IDENTITY_ANNOTATION: "gateway"}, id="gateway-identity-not-spiffe"),
        pytest.param({MIRROR_IDENTITIES_ANNOTATION: " , "}, id="no-backend-identity"),
    ],
)
def test_a_broken_mirror_becomes_a_service_without_endpoints(annotations: dict[str, str]) -> None:
    broken = mirror(annotations)
    assert remote_target(broken) is None
    snap = snapshot(broken)
    assert load_assignment(snap, HTTP_CLUSTER).endpoints == []  # calls fail at once, go nowhere else
    assert not [n for n in snap.of_type(LISTENER) if n.startswith("remote|")]


def test_a_mirror_of_a_dead_gateway_keeps_its_config_but_has_no_endpoints() -> None:
    dead = mirror({MIRROR_GATEWAY_ALIVE_ANNOTATION: "false"})
    target = remote_target(dead)
    assert target is not None and not target.gateway_alive
    live, snap = snapshot(mirror()), snapshot(dead)
    assert load_assignment(snap, HTTP_CLUSTER).endpoints == []  # a 503 at once
    assert load_assignment(live, HTTP_CLUSTER).endpoints != []
    # Only the endpoints differ: when the gateway is back, no cluster or listener has to warm up again.
    assert snap.of_type(LISTENER) == live.of_type(LISTENER)
    assert cluster(snap, HTTP_CLUSTER) == cluster(live, HTTP_CLUSTER)


def test_a_service_named_unlike_its_cluster_is_no_mirror() -> None:
    assert remote_target(mirror(labels={MIRROR_CLUSTER_LABEL: "north"})) is None


def test_http_goes_through_the_vip_chain_and_inner_mtls_into_the_tunnel() -> None:
    snap = snapshot(mirror())
    outbound = listener(snap, "outbound")
    (http,) = [c for c in outbound.filter_chains if c.name == f"{HTTP_CLUSTER}|http"]
    assert http.filter_chain_match.prefix_ranges[0].address_prefix == "10.96.0.77"
    assert http_manager(http).rds.route_config_name == HTTP_CLUSTER
    vhost = route_config(snap, HTTP_CLUSTER).virtual_hosts[0]
    assert vhost.retry_policy.retry_on == "connect-failure,refused-stream,reset-before-request"
    assert vhost.routes[0].route.cluster == HTTP_CLUSTER

    inner = cluster(snap, HTTP_CLUSTER)
    assert upstream_protocol(inner) == "http2"
    tls = upstream_tls(inner.transport_socket)
    assert tls.sni == "80.api.shop.svc.cluster.local"
    assert list(tls.common_tls_context.alpn_protocols) == [ALPN_HTTP]
    sans = tls.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names
    assert {m.matcher.exact for m in sans} == {API_ID, CANARY_ID}
    (ep,) = [e for g in load_assignment(snap, HTTP_CLUSTER).endpoints for e in g.lb_endpoints]
    tunnel_name = ep.endpoint.address.envoy_internal_address.server_listener_name
    assert tunnel_name == f"remote|80|{HOST}"

    tunnel = listener(snap, tunnel_name)
    assert tunnel.HasField("internal_listener")
    gateway = cluster(snap, tcp_proxy(tunnel.filter_chains[0]).cluster)
    outer = upstream_tls(gateway.transport_socket)
    assert outer.sni == "80.api.shop.svc.cluster.local"
    outer_sans = outer.common_tls_context.combined_validation_context.default_validation_context
    assert [m.matcher.exact for m in outer_sans.match_typed_subject_alt_names] == [GATEWAY_ID]
    assert gateway.upstream_bind_config.socket_options, "the outer connection leaves the pod: it must be marked"
    (gw,) = [e for g in load_assignment(snap, gateway.name).endpoints for e in g.lb_endpoints]
    assert gw.endpoint.address.socket_address.address == "172.31.255.130"
    assert gw.endpoint.address.socket_address.port_value == 4143


def test_an_opaque_mirror_port_is_tcp_only_with_the_tcp_alpn() -> None:
    snap = snapshot(mirror())
    names = {c.name for c in listener(snap, "outbound").filter_chains}
    assert f"outbound|5432|{HOST}|tcp" in names and f"outbound|5432|{HOST}|http" not in names
    tls = upstream_tls(cluster(snap, DB_CLUSTER).transport_socket)
    assert list(tls.common_tls_context.alpn_protocols) == [ALPN_TCP]
    assert tls.sni == "5432.api.shop.svc.cluster.local"


def test_a_mirror_is_never_exported_again() -> None:
    looped = mirror(labels={"mirror.isthmus.io/exported": "true"})
    assert exported_ports(ClusterState(basic_state().settings, services=(looped,))) == []


ENVOY = find_envoy()


@pytest.mark.envoy
def test_envoy_accepts_a_sidecar_with_mirrors(tmp_path: Path) -> None:
    identity = TestMesh()
    identity_dir = str(write_identity(tmp_path / "identity", identity, identity.workload("default", "client")))
    p = CLIENT
    boot = render_bootstrap(
        node_id(p.cluster, p.namespace, p.name), p.deployment, p.ip, "/run/isthmus/ads.sock", {"pod": p.name}
    )
    snap = build_sidecar(basic_state(mirror()), p, identity_dir)
    assert any(
        isinstance(m, listener_pb2.Listener) and m.HasField("internal_listener")
        for m in snap.of_type(LISTENER).values()
    )
    for inline in (False, True):
        ok, output = validate(ENVOY, with_snapshot(boot, snap, inline), tmp_path)
        assert ok, output
