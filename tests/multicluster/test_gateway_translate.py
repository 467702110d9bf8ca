"""The gateway's Envoy config (pure): exported services only, chosen by SNI, behind mTLS that requires
a mesh certificate; the caller's inner TLS passes to meshed endpoints untouched."""

from __future__ import annotations

from dataclasses import replace

import pytest

from isthmus.model.mesh import EXPORTED_LABEL, GATEWAY_ANNOTATION, GATEWAY_NAMESPACE, node_id
from isthmus.model.resources import ObjectMeta, ServiceAddress
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, Snapshot
from isthmus.xds.translate import build_sidecar, build_sidecars
from isthmus.xds.translate.gateway import GATEWAY_LISTENER, GATEWAY_PORT, build_gateway
from isthmus.xds.translate.tls import TLS_SOCKET
from tests.xds.fixtures import downstream_tls, endpoint_addresses, load_assignment, pod, service, state, tcp_proxy

GATEWAY = replace(
    pod("isthmus-gateway-abc", "10.16.1.9", "isthmus-gateway", ports=(), namespace=GATEWAY_NAMESPACE),
    annotations=((GATEWAY_ANNOTATION, "true"),),
)


def exported(svc: ServiceAddress) -> ServiceAddress:
    meta = svc.service.meta
    labelled = ObjectMeta(meta.name, meta.namespace, (*meta.labels, (EXPORTED_LABEL, "true")), meta.annotations)
    return replace(svc, service=replace(svc.service, meta=labelled))


def _world() -> Snapshot:
    return build_gateway(
        state(
            exported(service("api", "10.96.0.10", namespace="shop")),
            exported(service("multi", "10.96.0.11", ((80, 8080), (9000, 9000)), namespace="shop")),
            service("hidden", "10.96.0.12", namespace="shop", app="api"),
            pod("api-1", "10.16.1.1", "api", namespace="shop"),
            pod("api-2", "10.16.1.2", "api", namespace="shop", injected=False),
            pod("multi-1", "10.16.1.3", "multi", ports=(8080, 9000), namespace="shop"),
            GATEWAY,
        ),
        GATEWAY,
    )


def _chains_by_sni(snap: Snapshot) -> dict[str, str]:
    lst = snap.of_type(LISTENER)[GATEWAY_LISTENER]
    return {name: ch.name for ch in lst.filter_chains for name in ch.filter_chain_match.server_names}


def test_only_exported_service_ports_have_a_chain_each_named_by_sni() -> None:
    assert _chains_by_sni(_world()) == {
        "api.shop.svc.cluster.local": "gateway|80|api.shop.svc.cluster.local",
        "80.api.shop.svc.cluster.local": "gateway|80|api.shop.svc.cluster.local",
        # Two ports: only the explicit form, never a guess between them.
        "80.multi.shop.svc.cluster.local": "gateway|80|multi.shop.svc.cluster.local",
        "9000.multi.shop.svc.cluster.local": "gateway|9000|multi.shop.svc.cluster.local",
    }


def test_every_chain_requires_a_mesh_client_certificate_over_tls_1_3() -> None:
    lst = _world().of_type(LISTENER)[GATEWAY_LISTENER]
    assert lst.address.socket_address.port_value == GATEWAY_PORT
    assert not lst.default_filter_chain.filters  # anything unnamed is closed
    for ch in lst.filter_chains:
        assert ch.filter_chain_match.transport_protocol == "tls"
        ctx = downstream_tls(ch)
        assert ctx.require_client_certificate.value
        common = ctx.common_tls_context
        assert common.tls_params.tls_minimum_protocol_version == common.tls_params.TLSv1_3
        sans = common.combined_validation_context.default_validation_context.match_typed_subject_alt_names
        assert [m.matcher.prefix for m in sans] == ["spiffe://cluster.local/"]
        assert common.combined_validation_context.validation_context_sds_secret_config.name == "trust-bundle"


def test_the_inner_tls_goes_to_meshed_endpoints_untouched() -> None:
    snap = _world()
    name = "gateway|80|api.shop.svc.cluster.local"
    lst = snap.of_type(LISTENER)[GATEWAY_LISTENER]
    assert tcp_proxy(next(ch for ch in lst.filter_chains if ch.name == name)).cluster == name
    cluster = snap.of_type(CLUSTER)[name]
    assert cluster.transport_socket.name != TLS_SOCKET and not cluster.transport_socket_matches
    assert endpoint_addresses(load_assignment(snap, name)) == ["10.16.1.1:8080"]  # api-2 has no sidecar
    assert set(snap.of_type(ENDPOINT)) == set(snap.of_type(CLUSTER))


def test_nothing_exported_still_gives_a_listener_that_refuses() -> None:
    snap = build_gateway(state(service("api", "10.96.0.10"), pod("api-1", "10.16.1.1", "api"), GATEWAY), GATEWAY)
    lst = snap.of_type(LISTENER)[GATEWAY_LISTENER]
    assert not lst.filter_chains and not lst.default_filter_chain.filters
    assert not snap.of_type(CLUSTER)


def test_gateways_get_gateway_config_and_the_annotation_counts_only_in_its_namespace() -> None:
    impostor = replace(GATEWAY, name="impostor", namespace="default")
    world = state(exported(service("api", "10.96.0.10")), pod("api-1", "10.16.1.1", "api"), GATEWAY, impostor)
    snaps = build_sidecars(world)
    assert GATEWAY_LISTENER in snaps[node_id("west", GATEWAY_NAMESPACE, GATEWAY.name)].of_type(LISTENER)
    assert GATEWAY_LISTENER not in snaps[node_id("west", "default", "impostor")].of_type(LISTENER)
    assert build_sidecar(world, GATEWAY) == snaps[node_id("west", GATEWAY_NAMESPACE, GATEWAY.name)]
    with pytest.raises(ValueError, match="not a gateway"):
        build_gateway(world, impostor)
