"""A small builder for ClusterState scenarios, and readers that pull out of a
Snapshot the parts of the Envoy config a test asserts on."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2 as components
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as upstream_http

from isthmus.model.index import ClusterState
from isthmus.model.resources import (
    ANNOTATION_INBOUND_POLICY,
    ANNOTATION_INJECT,
    ANNOTATION_OPAQUE_PORTS,
    ClusterSettings,
    ContainerPort,
    ObjectMeta,
    Pod,
    Protocol,
    Service,
    ServiceAddress,
    ServicePort,
)
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot

CLUSTER_NAME = "west"


def service(
    name: str,
    ip: str,
    ports: Iterable[tuple[int, int | str] | tuple[int, int | str, Protocol]] = ((80, 8080),),
    namespace: str = "default",
    app: str | None = None,
) -> ServiceAddress:
    """ports: (port, target_port[, protocol]); selects pods labelled app=<app or name>."""
    return ServiceAddress(
        Service(
            ObjectMeta(name, namespace),
            selector=(("app", app or name),),
            ports=tuple(ServicePort(p[0], p[1], protocol=p[2] if len(p) > 2 else "TCP") for p in ports),
        ),
        cluster_ip=ip,
        cluster=CLUSTER_NAME,
    )


def pod(
    name: str,
    ip: str,
    app: str,
    ports: Iterable[int | ContainerPort] = (8080,),
    namespace: str = "default",
    opaque: str = "",
    ready: bool = True,
    injected: bool = True,
    policy: str = "",
    service_account: str = "",
) -> Pod:
    """Runs as service account <service_account or app>; policy: its inbound-policy annotation."""
    annotations: list[tuple[str, str]] = []
    if opaque:
        annotations.append((ANNOTATION_OPAQUE_PORTS, opaque))
    if not injected:
        annotations.append((ANNOTATION_INJECT, "disabled"))
    if policy:
        annotations.append((ANNOTATION_INBOUND_POLICY, policy))
    return Pod(
        name=name,
        namespace=namespace,
        cluster=CLUSTER_NAME,
        ip=ip,
        labels=(("app", app),),
        annotations=tuple(annotations),
        service_account=service_account or app,
        deployment=app,
        container_ports=tuple(p if isinstance(p, ContainerPort) else ContainerPort(p) for p in ports),
        ready=ready,
    )


def state(
    *objects: ServiceAddress | Pod,
    detect_timeout_ms: int = 1000,
    trust_domain: str = "cluster.local",
    default_inbound_policy: str = "all-unauthenticated",
    namespace_policies: dict[str, str] | None = None,
) -> ClusterState:
    return ClusterState(
        ClusterSettings(
            CLUSTER_NAME,
            trust_domain=trust_domain,
            detect_timeout_ms=detect_timeout_ms,
            default_inbound_policy=default_inbound_policy,
        ),
        services=tuple(o for o in objects if isinstance(o, ServiceAddress)),
        pods=tuple(o for o in objects if isinstance(o, Pod)),
        namespace_annotations=tuple(
            (ns, ((ANNOTATION_INBOUND_POLICY, policy),)) for ns, policy in (namespace_policies or {}).items()
        ),
    )


# The scenario most tests start from: a client calling an HTTP service with two
# replicas and an opaque Redis.
WEB = service("web", "10.96.0.10", [(80, "http")])
REDIS = service("redis", "10.96.0.20", [(6379, 6379)])
WEB_1 = pod("web-1", "10.0.0.1", "web", [ContainerPort(8080, "http")])
WEB_2 = pod("web-2", "10.0.0.2", "web", [ContainerPort(8080, "http")])
REDIS_1 = pod("redis-1", "10.0.0.5", "redis", [6379], opaque="6379")
CLIENT = pod("client", "10.0.0.9", "client", [9000])
WEB_CLUSTER = "outbound|80|web.default.svc.cluster.local"
WEB_TCP_CLUSTER = f"{WEB_CLUSTER}|tcp"
REDIS_CLUSTER = "outbound|6379|redis.default.svc.cluster.local"
REDIS_TCP_CLUSTER = f"{REDIS_CLUSTER}|tcp"


def basic_state(*extra: ServiceAddress | Pod) -> ClusterState:
    return state(WEB, REDIS, WEB_1, WEB_2, REDIS_1, CLIENT, *extra)


# ---- readers --------------------------------------------------------------


def listener(snap: Snapshot, name: str) -> listener_pb2.Listener:
    msg = snap.of_type(LISTENER)[name]
    assert isinstance(msg, listener_pb2.Listener)
    return msg


def chain(lst: listener_pb2.Listener, name: str) -> components.FilterChain:
    found = [c for c in lst.filter_chains if c.name == name]
    assert found, f"no chain {name!r} in {[c.name for c in lst.filter_chains]}"
    return found[0]


def chain_names(lst: listener_pb2.Listener) -> set[str]:
    return {c.name for c in lst.filter_chains}


def http_manager(ch: components.FilterChain) -> hcm.HttpConnectionManager:
    (f,) = ch.filters
    out = hcm.HttpConnectionManager()
    assert f.typed_config.Unpack(out)
    return out


def tcp_proxy(ch: components.FilterChain) -> tcp_proxy_pb2.TcpProxy:
    (f,) = ch.filters
    out = tcp_proxy_pb2.TcpProxy()
    assert f.typed_config.Unpack(out)
    return out


def upstream_tls(socket: base_pb2.TransportSocket) -> tls_pb2.UpstreamTlsContext:
    assert socket.name == "envoy.transport_sockets.tls", socket.name
    out = tls_pb2.UpstreamTlsContext()
    assert socket.typed_config.Unpack(out)
    return out


def downstream_tls(ch: components.FilterChain) -> tls_pb2.DownstreamTlsContext:
    assert ch.transport_socket.name == "envoy.transport_sockets.tls", ch.name
    out = tls_pb2.DownstreamTlsContext()
    assert ch.transport_socket.typed_config.Unpack(out)
    return out


def socket_match_for(c: cluster_pb2.Cluster, endpoint_metadata: base_pb2.Metadata) -> base_pb2.TransportSocket:
    """The transport socket Envoy picks for an endpoint: the first match whose fields
    the endpoint's "envoy.transport_socket_match" metadata all has, else the default."""
    have = dict(endpoint_metadata.filter_metadata["envoy.transport_socket_match"])
    for m in c.transport_socket_matches:
        if all(have.get(k) == v for k, v in dict(m.match).items()):
            return m.transport_socket
    return c.transport_socket


def cluster(snap: Snapshot, name: str) -> cluster_pb2.Cluster:
    msg = snap.of_type(CLUSTER)[name]
    assert isinstance(msg, cluster_pb2.Cluster)
    return msg


def protocol_options(c: cluster_pb2.Cluster) -> upstream_http.HttpProtocolOptions | None:
    key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    if key not in c.typed_extension_protocol_options:
        return None
    out = upstream_http.HttpProtocolOptions()
    assert c.typed_extension_protocol_options[key].Unpack(out)
    return out


def upstream_protocol(c: cluster_pb2.Cluster) -> str:
    """ "http1", "http2", "downstream" or "none", as the cluster is configured."""
    opts = protocol_options(c)
    if opts is None:
        return "none"
    if opts.HasField("use_downstream_protocol_config"):
        return "downstream"
    explicit = opts.explicit_http_config
    return "http2" if explicit.HasField("http2_protocol_options") else "http1"


def route_config(snap: Snapshot, name: str) -> route_pb2.RouteConfiguration:
    msg = snap.of_type(ROUTE)[name]
    assert isinstance(msg, route_pb2.RouteConfiguration)
    return msg


def load_assignment(snap: Snapshot, name: str) -> endpoint_pb2.ClusterLoadAssignment:
    msg = snap.of_type(ENDPOINT)[name]
    assert isinstance(msg, endpoint_pb2.ClusterLoadAssignment)
    return msg


def lb_endpoints(cla: endpoint_pb2.ClusterLoadAssignment) -> list[endpoint_components_pb2.LbEndpoint]:
    return [e for group in cla.endpoints for e in group.lb_endpoints]


def endpoint_addresses(cla: endpoint_pb2.ClusterLoadAssignment) -> list[str]:
    return [
        f"{e.endpoint.address.socket_address.address}:{e.endpoint.address.socket_address.port_value}"
        for group in cla.endpoints
        for e in group.lb_endpoints
    ]


def route_for(rc: route_pb2.RouteConfiguration, headers: dict[str, str]) -> str:
    """Which cluster a request with these headers reaches: Envoy's first-match
    rule over our routes (prefix "/" plus exact header matches only)."""
    (vhost,) = rc.virtual_hosts
    for r in vhost.routes:
        assert r.match.prefix == "/"
        if all(headers.get(h.name) == h.string_match.exact for h in r.match.headers):
            return r.route.cluster
    raise AssertionError("no route matched")


def inspector_runs_on(lst: listener_pb2.Listener, port: int, inspector: str = "http") -> bool:
    """Whether http_inspector (or tls_inspector) looks at connections to `port` (evaluates filter_disabled)."""
    inspectors = [f for f in lst.listener_filters if f.name == f"envoy.filters.listener.{inspector}_inspector"]
    if not inspectors:
        return False
    (found,) = inspectors
    if not found.HasField("filter_disabled"):
        return True
    return not _predicate(found.filter_disabled, port)


def _predicate(p: components.ListenerFilterChainMatchPredicate, port: int) -> bool:
    match p.WhichOneof("rule"):
        case "or_match":
            return any(_predicate(r, port) for r in p.or_match.rules)
        case "and_match":
            return all(_predicate(r, port) for r in p.and_match.rules)
        case "not_match":
            return not _predicate(p.not_match, port)
        case "any_match":
            return p.any_match
        case "destination_port_range":
            return p.destination_port_range.start <= port < p.destination_port_range.end
    raise AssertionError(f"unknown predicate {p}")
