"""Tracing in the sidecar config: nothing at all without a collector; with one, every HTTP connection
manager carries the OpenTelemetry tracer and the pod tags, and spans have a cluster to go out by."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.trace.v3 import opentelemetry_pb2
from google.protobuf import json_format

from isthmus.model.index import ClusterState
from isthmus.model.mesh import IDENTITY_DIR, node_id
from isthmus.model.resources import (
    TRACE_COLLECTOR_LABEL,
    TRACE_COLLECTOR_NAMESPACE,
    TRACE_COLLECTOR_PORT_NAME,
    ContainerPort,
    ObjectMeta,
    Service,
    ServiceAddress,
    ServicePort,
    TracingSettings,
    trace_collector,
)
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.xds.snapshot import ENDPOINT, LISTENER
from isthmus.xds.translate import build_sidecar, build_sidecars
from isthmus.xds.translate.chains import HCM_FILTER
from isthmus.xds.translate.fragments import Resources
from isthmus.xds.translate.inbound import build_inbound
from isthmus.xds.translate.outbound import build_outbound
from isthmus.xds.translate.tls import MeshTls
from isthmus.xds.translate.tracing import COLLECTOR_CLUSTER, SPAN_TAGS, TRACER
from tests.xds.certs import TestMesh, write_identity
from tests.xds.envoy_config import find_envoy, validate, with_snapshot
from tests.xds.fixtures import CLIENT, WEB_1, basic_state, cluster, http_manager, listener, pod

COLLECTOR_POD = pod(
    "isthmus-tracing-1",
    "10.0.0.40",
    "isthmus-tracing",
    [ContainerPort(4317, TRACE_COLLECTOR_PORT_NAME)],
    namespace=TRACE_COLLECTOR_NAMESPACE,
    injected=False,
)


def collector_service(labelled: bool = True, port_name: str = TRACE_COLLECTOR_PORT_NAME) -> Service:
    labels = ((TRACE_COLLECTOR_LABEL, "true"),) if labelled else ()
    return Service(
        ObjectMeta("isthmus-tracing", TRACE_COLLECTOR_NAMESPACE, labels=labels),
        selector=(("app", "isthmus-tracing"),),
        ports=(ServicePort(4317, port_name, name=port_name),),
    )


def traced_state() -> ClusterState:
    """The basic scenario plus the tracing add-on's collector, as the platform publishes it."""
    svc = collector_service()
    base = basic_state(ServiceAddress(svc, "10.96.0.40", "west"), COLLECTOR_POD)
    return replace(base, settings=replace(base.settings, tracing=trace_collector([svc])))


def _managers(snap: object) -> list[object]:
    out = []
    for name in ("inbound", "outbound"):
        lst = listener(snap, name)  # type: ignore[arg-type]
        for ch in [*lst.filter_chains, lst.default_filter_chain]:
            if any(f.name == HCM_FILTER for f in ch.filters):
                out.append(http_manager(ch))
    return out


def test_the_collector_rule_takes_only_the_labelled_service_in_the_system_namespace() -> None:
    assert trace_collector([collector_service()]) == TracingSettings(TRACE_COLLECTOR_NAMESPACE, "isthmus-tracing", 4317)
    assert trace_collector([collector_service(labelled=False)]) is None
    assert trace_collector([collector_service(port_name="grpc")]) is None
    elsewhere = collector_service()
    elsewhere = replace(elsewhere, meta=replace(elsewhere.meta, namespace="default"))
    assert trace_collector([elsewhere]) is None


def test_without_a_collector_the_config_is_exactly_what_outbound_and_inbound_build() -> None:
    """Tracing off (the default) adds nothing and changes nothing, even with the collector's pod
    and an unlabelled Service of it present."""
    unlabelled = ServiceAddress(collector_service(labelled=False), "10.96.0.40", "west")
    for state in (basic_state(), basic_state(unlabelled, COLLECTOR_POD)):
        assert state.settings.tracing is None
        mesh = MeshTls(identity_dir=IDENTITY_DIR, trust_domain=state.settings.trust_domain)
        for p in (CLIENT, WEB_1):
            expected = Resources()
            expected.extend(build_outbound(state, mesh))
            expected.extend(build_inbound(state, p, mesh))
            assert build_sidecar(state, p).resources == expected.by_type()
            assert build_sidecars(state)[node_id("west", "default", p.name)].resources == expected.by_type()
        assert all(not m.HasField("tracing") for m in _managers(build_sidecar(state, CLIENT)))  # type: ignore[attr-defined]


def test_with_a_collector_every_http_manager_traces_with_the_pod_tags() -> None:
    snap = build_sidecar(traced_state(), WEB_1)
    managers = _managers(snap)
    assert len(managers) >= 3  # outbound HTTP chains, inbound mTLS and plaintext HTTP chains
    for m in managers:
        tracing = m.tracing  # type: ignore[attr-defined]
        assert tracing.provider.name == TRACER
        tracer = opentelemetry_pb2.OpenTelemetryConfig()
        assert tracing.provider.typed_config.Unpack(tracer)
        assert tracer.grpc_service.envoy_grpc.cluster_name == COLLECTOR_CLUSTER
        assert tracing.random_sampling.value == 100.0
        tags = {t.tag: t.environment.name for t in tracing.custom_tags}
        assert tags == dict(SPAN_TAGS)
        assert set(tags) >= {
            "k8s.pod.name",
            "k8s.namespace.name",
            "k8s.deployment.name",
            "k8s.cluster.name",
            "k8s.node.name",
            "isthmus.service_account",
        }


def test_spans_go_to_the_collector_pods_directly_over_http2() -> None:
    snap = build_sidecar(traced_state(), CLIENT)
    c = cluster(snap, COLLECTOR_CLUSTER)
    assert c.type == cluster_pb2.Cluster.EDS
    assert not c.HasField("transport_socket") and not c.transport_socket_matches  # the collector has no sidecar
    assert c.upstream_bind_config.socket_options, "marked, so the pod's redirect lets it out"
    cla = snap.of_type(ENDPOINT)[COLLECTOR_CLUSTER]
    assert isinstance(cla, endpoint_pb2.ClusterLoadAssignment)
    (group,) = cla.endpoints
    addresses = [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for e in group.lb_endpoints
    ]
    assert addresses == [("10.0.0.40", 4317)]


def test_every_pod_shares_one_traced_outbound() -> None:
    """The pod tags come from each sidecar's environment, so the outbound half stays the same for all."""
    snaps = build_sidecars(traced_state())
    client = snaps[node_id("west", "default", CLIENT.name)]
    web = snaps[node_id("west", "default", WEB_1.name)]
    assert client.of_type(LISTENER)["outbound"] == web.of_type(LISTENER)["outbound"]
    assert build_sidecar(traced_state(), CLIENT).version(LISTENER) == client.version(LISTENER)


@pytest.mark.envoy
@pytest.mark.parametrize("inline", [pytest.param(False, id="as-served"), pytest.param(True, id="rds-eds-inline")])
def test_envoy_accepts_the_traced_config(inline: bool, tmp_path: Path) -> None:
    envoy = find_envoy()
    mesh = TestMesh()
    identity = str(write_identity(tmp_path / "identity", mesh, mesh.workload("default", "web")))
    bootstrap = render_bootstrap(node_id("west", "default", "web-1"), "web", WEB_1.ip, "/run/isthmus/ads.sock", {})
    config = with_snapshot(bootstrap, build_sidecar(traced_state(), WEB_1, identity), inline)
    ok, output = validate(envoy, config, tmp_path)
    assert ok, output
    assert COLLECTOR_CLUSTER in json_format.MessageToJson(config)
