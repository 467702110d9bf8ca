"""Mutual TLS in the sidecar config: who must present which identity, on which hop."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2

from isthmus.model.mesh import (
    ALPN_HTTP,
    ALPN_TCP,
    CLIENT_ID_HEADER,
    IDENTITY_DIR,
    TRUST_BUNDLE_SECRET,
    TRUST_BUNDLE_SECRET_FILE,
    WORKLOAD_SECRET,
    WORKLOAD_SECRET_FILE,
)
from isthmus.model.resources import ContainerPort, Pod
from isthmus.xds.snapshot import CLUSTER, Snapshot
from isthmus.xds.translate import build_sidecar
from tests.xds.fixtures import (
    CLIENT,
    REDIS,
    REDIS_1,
    REDIS_CLUSTER,
    REDIS_TCP_CLUSTER,
    WEB,
    WEB_1,
    WEB_2,
    WEB_CLUSTER,
    WEB_TCP_CLUSTER,
    basic_state,
    chain,
    chain_names,
    cluster,
    downstream_tls,
    http_manager,
    inspector_runs_on,
    lb_endpoints,
    listener,
    load_assignment,
    pod,
    route_config,
    socket_match_for,
    state,
    tcp_proxy,
    upstream_tls,
)

WEB_ID = "spiffe://cluster.local/ns/default/sa/web"
CANARY = pod("web-7", "10.0.0.7", "web", [ContainerPort(8080, "http")], service_account="web-canary")
LEGACY = pod("web-9", "10.0.0.99", "web", [ContainerPort(8080, "http")], injected=False)


def _sds(c: tls_pb2.CommonTlsContext, identity_dir: str = IDENTITY_DIR) -> None:
    """The workload certificate and the anchors come from the agent's two watched files."""
    (cert,) = c.tls_certificate_sds_secret_configs
    bundle = c.combined_validation_context.validation_context_sds_secret_config
    for secret, name, file in (
        (cert, WORKLOAD_SECRET, WORKLOAD_SECRET_FILE),
        (bundle, TRUST_BUNDLE_SECRET, TRUST_BUNDLE_SECRET_FILE),
    ):
        assert secret.name == name
        source = secret.sds_config.path_config_source
        assert source.path == f"{identity_dir}/{file}"
        assert source.watched_directory.path == identity_dir
    assert c.tls_params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_3
    assert c.tls_params.tls_maximum_protocol_version == common_pb2.TlsParameters.TLSv1_3


def _san(c: tls_pb2.CommonTlsContext) -> tuple[str, str]:
    """(how, value) of the one URI SAN rule: ("exact", id) or ("prefix", ...)."""
    (rule,) = c.combined_validation_context.default_validation_context.match_typed_subject_alt_names
    assert rule.san_type == common_pb2.SubjectAltNameMatcher.URI
    how = rule.matcher.WhichOneof("match_pattern")
    assert how is not None
    return how, getattr(rule.matcher, how)


def _endpoint_socket(name: str, pod_name: str, *extra: Pod) -> base_pb2.TransportSocket:
    """The transport socket the client's cluster `name` uses towards one web endpoint."""
    snap = build_sidecar(basic_state(*extra), CLIENT)
    endpoints = lb_endpoints(load_assignment(snap, WEB_CLUSTER))
    (ep,) = [e for e in endpoints if e.metadata.filter_metadata["isthmus"]["pod"] == pod_name]
    return socket_match_for(cluster(snap, name), ep.metadata)


# ---- outbound ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "alpn"),
    [pytest.param(WEB_CLUSTER, [ALPN_HTTP], id="http-offers-h2"), pytest.param(WEB_TCP_CLUSTER, [ALPN_TCP], id="tcp")],
)
def test_meshed_endpoint_gets_mtls_that_checks_its_identity(name: str, alpn: list[str]) -> None:
    tls = upstream_tls(_endpoint_socket(name, "web-1"))
    _sds(tls.common_tls_context)
    assert _san(tls.common_tls_context) == ("exact", WEB_ID)
    assert list(tls.common_tls_context.alpn_protocols) == alpn
    assert tls.sni == "web.default.svc.cluster.local"


def test_each_identity_behind_a_service_is_checked_as_its_own() -> None:
    assert _san(upstream_tls(_endpoint_socket(WEB_CLUSTER, "web-7", CANARY)).common_tls_context) == (
        "exact",
        "spiffe://cluster.local/ns/default/sa/web-canary",
    )
    assert _san(upstream_tls(_endpoint_socket(WEB_CLUSTER, "web-1", CANARY)).common_tls_context) == ("exact", WEB_ID)


def test_endpoint_without_sidecar_gets_plaintext_and_the_others_keep_mtls() -> None:
    assert _endpoint_socket(WEB_CLUSTER, "web-9", LEGACY).name == "envoy.transport_sockets.raw_buffer"
    tls = upstream_tls(_endpoint_socket(WEB_CLUSTER, "web-1", LEGACY))
    assert _san(tls.common_tls_context) == ("exact", WEB_ID)
    # The cluster keeps the client's protocol, so each pool offers what it speaks ("h2" or "http/1.1").
    assert not tls.common_tls_context.alpn_protocols


def test_endpoint_with_unknown_identity_never_gets_plaintext() -> None:
    snap = build_sidecar(basic_state(LEGACY), CLIENT)
    for name in (WEB_CLUSTER, WEB_TCP_CLUSTER):
        default = upstream_tls(cluster(snap, name).transport_socket)
        _sds(default.common_tls_context)
        how, value = _san(default.common_tls_context)
        assert how == "exact" and value.startswith("spiffe://cluster.local/isthmus/")


def test_trust_domain_and_identity_dir_come_from_the_caller() -> None:
    snap = build_sidecar(state(WEB, WEB_1, CLIENT, trust_domain="example.org"), CLIENT, identity_dir="/tmp/id")
    c = cluster(snap, WEB_CLUSTER)
    (match,) = c.transport_socket_matches
    tls = upstream_tls(match.transport_socket)
    _sds(tls.common_tls_context, "/tmp/id")
    assert _san(tls.common_tls_context) == ("exact", "spiffe://example.org/ns/default/sa/web")


def test_readiness_changes_endpoints_not_clusters() -> None:
    # A cluster update would replace the cluster and drain its connections.
    down = pod("web-7", "10.0.0.7", "web", [ContainerPort(8080, "http")], service_account="web-canary", ready=False)
    up = pod("web-7", "10.0.0.7", "web", [ContainerPort(8080, "http")], service_account="web-canary")
    before = build_sidecar(basic_state(down), CLIENT)
    after = build_sidecar(basic_state(up), CLIENT)
    assert before.version(CLUSTER) == after.version(CLUSTER)
    assert len(lb_endpoints(load_assignment(before, WEB_CLUSTER))) == 2
    assert len(lb_endpoints(load_assignment(after, WEB_CLUSTER))) == 3


def test_opaque_port_offers_tcp_alpn() -> None:
    snap = build_sidecar(basic_state(), CLIENT)
    assert REDIS_CLUSTER not in snap.of_type(CLUSTER)
    (match,) = cluster(snap, REDIS_TCP_CLUSTER).transport_socket_matches
    assert list(upstream_tls(match.transport_socket).common_tls_context.alpn_protocols) == [ALPN_TCP]


def test_passthrough_stays_plaintext() -> None:
    c = cluster(build_sidecar(basic_state(), CLIENT), "passthrough")
    assert not c.HasField("transport_socket") and not c.transport_socket_matches


# ---- inbound -----------------------------------------------------------------


def _inbound(p: Pod = WEB_1, **settings: Any) -> tuple[Snapshot, listener_pb2.Listener]:
    """settings: keyword arguments of `fixtures.state` (policies)."""
    snap = build_sidecar(state(WEB, p, **settings), p)
    return snap, listener(snap, "inbound")


@pytest.mark.parametrize(
    ("suffix", "alpn", "filter_kind"),
    [
        pytest.param("mtls-http", ["h2", "http/1.1"], "hcm", id="http"),
        pytest.param("mtls-tcp", [ALPN_TCP], "tcp", id="tcp"),
    ],
)
def test_inbound_port_terminates_mtls_from_any_identity_of_the_trust_domain(
    suffix: str, alpn: list[str], filter_kind: str
) -> None:
    _, lst = _inbound()
    ch = chain(lst, f"inbound|8080|{suffix}")
    assert ch.filter_chain_match.transport_protocol == "tls"
    assert list(ch.filter_chain_match.application_protocols) == alpn
    tls = downstream_tls(ch)
    assert tls.require_client_certificate.value
    assert tls.disable_stateless_session_resumption and tls.disable_stateful_session_resumption
    _sds(tls.common_tls_context)
    assert _san(tls.common_tls_context) == ("prefix", "spiffe://cluster.local/")
    assert list(tls.common_tls_context.alpn_protocols) == alpn
    if filter_kind == "hcm":
        assert http_manager(ch).rds.route_config_name == "inbound|8080"
    else:
        assert tcp_proxy(ch).cluster == "inbound|8080|tcp"


def test_mtls_http_chain_hands_the_verified_client_certificate_on() -> None:
    _, lst = _inbound()
    manager = http_manager(chain(lst, "inbound|8080|mtls-http"))
    assert manager.forward_client_cert_details == manager.SANITIZE_SET
    assert manager.set_current_client_cert_details.uri
    plain = http_manager(chain(lst, "inbound|8080|http"))
    assert plain.forward_client_cert_details == plain.SANITIZE


def test_client_id_header_is_removed_then_set_from_the_certificate() -> None:
    (vhost,) = route_config(build_sidecar(basic_state(), WEB_1), "inbound|8080").virtual_hosts
    assert CLIENT_ID_HEADER in vhost.request_headers_to_remove
    (added,) = [h for h in vhost.request_headers_to_add if h.header.key == CLIENT_ID_HEADER]
    assert added.header.value == "%DOWNSTREAM_PEER_URI_SAN%"
    assert added.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    # An empty value (plaintext) adds nothing, and the removal has already happened.
    assert not added.keep_empty_value


def test_inspectors_run_where_chains_need_them() -> None:
    redis = pod("redis-1", "10.0.0.5", "redis", [6379, 8080], opaque="6379")
    _, lst = _inbound(redis)
    assert [f.name for f in lst.listener_filters] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.tls_inspector",
        "envoy.filters.listener.http_inspector",
    ]
    assert inspector_runs_on(lst, 6379, "tls") and inspector_runs_on(lst, 8080, "tls")
    assert not inspector_runs_on(lst, 9999, "tls")
    assert not inspector_runs_on(lst, 6379) and inspector_runs_on(lst, 8080)


def test_opaque_port_takes_only_mesh_tcp() -> None:
    snap = build_sidecar(basic_state(), REDIS_1)
    names = chain_names(listener(snap, "inbound"))
    assert "inbound|6379|mtls-tcp" in names
    assert "inbound|6379|mtls-http" not in names


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param({"policy": "all-authenticated"}, id="pod-annotation"),
        pytest.param({"namespace_policies": {"default": "all-authenticated"}}, id="namespace-annotation"),
        pytest.param({"default_inbound_policy": "all-authenticated"}, id="cluster-default"),
    ],
)
def test_all_authenticated_admits_nothing_but_mtls(kw: dict[str, Any]) -> None:
    settings = dict(kw)
    p = pod("web-1", "10.0.0.1", "web", [ContainerPort(8080, "http")], policy=settings.pop("policy", ""))
    snap, lst = _inbound(p, **settings)
    app_chains = {c.name for c in lst.filter_chains if not c.name.startswith("loop-guard")}
    assert app_chains == {"inbound|8080|mtls-http", "inbound|8080|mtls-tcp"}
    # Envoy hands what matches no chain of a port to the default chain: it must close, not pass through.
    assert lst.default_filter_chain.name == "inbound-refused"
    assert not lst.default_filter_chain.filters
    assert "inbound-passthrough" not in snap.of_type(CLUSTER)
    assert not inspector_runs_on(lst, 8080)  # no plaintext chain to pick
    assert inspector_runs_on(lst, 8080, "tls")


def test_all_unauthenticated_passes_other_tls_to_the_app() -> None:
    _, lst = _inbound()
    other = chain(lst, "inbound|8080|tls")
    assert other.filter_chain_match.transport_protocol == "tls"
    assert not other.filter_chain_match.application_protocols
    assert not other.HasField("transport_socket")  # the app's own TLS, untouched
    assert tcp_proxy(other).cluster == "inbound|8080|tcp"
    assert tcp_proxy(lst.default_filter_chain).cluster == "inbound-passthrough"


def test_pod_annotation_overrides_namespace_policy() -> None:
    p = pod("web-1", "10.0.0.1", "web", [ContainerPort(8080, "http")], policy="all-unauthenticated")
    _, lst = _inbound(p, namespace_policies={"default": "all-authenticated"})
    assert "inbound|8080|http" in chain_names(lst)


def test_inbound_chains_never_overlap_under_either_policy() -> None:
    for policy in ("all-authenticated", "all-unauthenticated"):
        p = pod("odd", "10.0.0.1", "odd", [8080, 8081, 9000], opaque="8081", policy=policy)
        lst = listener(build_sidecar(state(p), p), "inbound")
        matches = [c.filter_chain_match.SerializeToString(deterministic=True) for c in lst.filter_chains]
        assert len(matches) == len(set(matches)), policy


def test_outbound_is_the_same_for_every_policy() -> None:
    # Only the receiving side decides whether plaintext is welcome; clients always use mTLS.
    strict = pod("client", "10.0.0.9", "client", [9000], policy="all-authenticated")
    a = build_sidecar(basic_state(), CLIENT)
    b = build_sidecar(state(WEB, REDIS, WEB_1, WEB_2, REDIS_1, strict), strict)
    assert listener(a, "outbound") == listener(b, "outbound")
    assert cluster(a, WEB_CLUSTER) == cluster(b, WEB_CLUSTER)
