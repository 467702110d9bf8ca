"""Inbound: what connections to this pod's ports become before they reach the app.

Peer sidecars always arrive over mTLS, and their ALPN says whether the connection
carries HTTP or opaque TCP. Clients outside the mesh arrive in plaintext, and are
let in only where the pod's inbound policy is "all-unauthenticated"; otherwise
nothing but mTLS gets to the app, on any port.

A peer sidecar may have upgraded a request to HTTP/2; it says what the client
originally spoke in ORIG_PROTO_HEADER, and the route picks a cluster that speaks
exactly that to the app. Requests from outside the mesh carry no such header and
reach the app in the protocol they arrived in.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as components
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.type.matcher.v3 import string_pb2

from isthmus.model.index import ClusterState
from isthmus.model.mesh import (
    ADMIN_PORT,
    ALPN_HTTP,
    ALPN_TCP,
    CLIENT_ID_HEADER,
    INBOUND_PORT,
    ORIG_PROTO_HEADER,
    OUTBOUND_PORT,
)
from isthmus.model.resources import Pod, selector_matches
from isthmus.xds.translate import naming
from isthmus.xds.translate.chains import (
    PLAINTEXT,
    chain_match,
    http_chain,
    listener_filters,
    loop_guards,
    refusing_chain,
    sidecar_listener,
    tcp_chain,
    tls_match,
)
from isthmus.xds.translate.clusters import original_dst_cluster
from isthmus.xds.translate.fragments import DISABLED, Resources
from isthmus.xds.translate.tls import ALPN_HTTP1, MeshTls, downstream_mtls

RESERVED_PORTS = frozenset({OUTBOUND_PORT, INBOUND_PORT, ADMIN_PORT})
# A peer sidecar offers "h2", or "http/1.1" from a cluster that keeps its client's protocol.
MESH_HTTP_ALPN = (ALPN_HTTP, ALPN_HTTP1)
OPEN_TO_PLAINTEXT = "all-unauthenticated"
# Envoy's view of the verified client certificate; empty on plaintext, where nothing is set.
PEER_IDENTITY = "%DOWNSTREAM_PEER_URI_SAN%"

# Header value (what Envoy's %PROTOCOL% gives) -> how to speak to the app.
_BY_ORIGINAL_PROTOCOL: tuple[tuple[str, naming.InboundKind], ...] = (("HTTP/1.1", "http1"), ("HTTP/2", "http2"))


def inbound_ports(state: ClusterState, pod: Pod) -> list[int]:
    """The pod's TCP container ports, plus every port a Service targets on it.

    Kubernetes does not require declaring a container port that a Service
    targets, yet peers upgrade requests to such a port to HTTP/2, so it needs an
    HTTP chain that can downgrade them. The sidecar's own ports are never app ports.
    """
    ports = {p.container_port for p in pod.container_ports if p.protocol == "TCP"}
    for svc in state.services:
        # ClusterState.selected_pods' rule for one pod, without scanning every pod per service.
        if svc.namespace != pod.namespace or not selector_matches(svc.service.selector, pod.labels):
            continue
        for sp in svc.service.ports:
            target = pod.resolve_port(sp.target_port)
            if sp.protocol == "TCP" and target is not None:
                ports.add(target)
    return sorted(p for p in ports if 0 < p <= 65535 and p not in RESERVED_PORTS)


def _route_config(port: int) -> route_pb2.RouteConfiguration:
    name = naming.inbound_route(port)
    routes = [
        rc.Route(
            match=rc.RouteMatch(
                prefix="/",
                headers=[rc.HeaderMatcher(name=ORIG_PROTO_HEADER, string_match=string_pb2.StringMatcher(exact=value))],
            ),
            route=rc.RouteAction(cluster=naming.inbound_cluster(port, kind), timeout=DISABLED),
        )
        for value, kind in _BY_ORIGINAL_PROTOCOL
    ]
    # No (or an unknown) header: a client outside the mesh, already in its own protocol.
    routes.append(
        rc.Route(
            match=rc.RouteMatch(prefix="/"),
            route=rc.RouteAction(cluster=naming.inbound_cluster(port, "downstream"), timeout=DISABLED),
        )
    )
    vhost = rc.VirtualHost(
        name=name,
        domains=["*"],
        routes=routes,
        # Routing has already read ORIG_PROTO_HEADER by the time headers are rewritten; the
        # app never sees it. Removal comes before addition, so a client-id header reaches the
        # app only as this sidecar set it from a verified certificate, never as a client sent it.
        request_headers_to_remove=[ORIG_PROTO_HEADER, CLIENT_ID_HEADER],
        request_headers_to_add=[
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=CLIENT_ID_HEADER, value=PEER_IDENTITY),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        ],
    )
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[vhost])


def _mesh_chains(port: int, http: bool, mesh: MeshTls) -> list[components.FilterChain]:
    """Peer sidecars: mTLS, its ALPN saying whether HTTP or opaque TCP is inside."""
    stat_prefix, tcp_cluster = naming.inbound_stat_prefix(port), naming.inbound_cluster(port, "tcp")
    chains = [
        tcp_chain(
            f"inbound|{port}|mtls-tcp",
            tls_match(port, (ALPN_TCP,)),
            stat_prefix,
            tcp_cluster,
            downstream_mtls(mesh, (ALPN_TCP,)),
        )
    ]
    if http:
        mtls = downstream_mtls(mesh, MESH_HTTP_ALPN)
        route = naming.inbound_route(port)
        chains.append(
            http_chain(f"inbound|{port}|mtls-http", tls_match(port, MESH_HTTP_ALPN), stat_prefix, route, mtls)
        )
    return chains


def _plaintext_chains(port: int, http: bool) -> list[components.FilterChain]:
    """Clients outside the mesh, where the pod's policy lets them in."""
    stat_prefix, tcp_cluster = naming.inbound_unmeshed_stat_prefix(port), naming.inbound_cluster(port, "tcp")
    chains = [
        # TLS that no peer sidecar would send (another ALPN, or none) is a client outside
        # the mesh speaking the app's own TLS: it goes through untouched.
        tcp_chain(f"inbound|{port}|tls", tls_match(port, ()), stat_prefix, tcp_cluster),
        tcp_chain(tcp_cluster, chain_match(port, None, False, PLAINTEXT), stat_prefix, tcp_cluster),
    ]
    if http:
        match = chain_match(port, None, True, PLAINTEXT)
        chains.append(http_chain(f"inbound|{port}|http", match, stat_prefix, naming.inbound_route(port)))
    return chains


def build_inbound(state: ClusterState, pod: Pod, mesh: MeshTls) -> Resources:
    open_to_plaintext = state.inbound_policy(pod) == OPEN_TO_PLAINTEXT
    out = Resources()
    chains = loop_guards()
    ports = inbound_ports(state, pod)
    http_ports = [p for p in ports if p not in pod.opaque_ports]
    for port in ports:
        http = port in http_ports
        chains += _mesh_chains(port, http, mesh)
        if open_to_plaintext:
            chains += _plaintext_chains(port, http)
        if http:
            out.routes.append(_route_config(port))
            out.clusters += [
                original_dst_cluster(naming.inbound_cluster(port, kind), kind)
                for kind in ("http1", "http2", "downstream")
            ]
        out.clusters.append(original_dst_cluster(naming.inbound_cluster(port, "tcp"), "none"))

    # Envoy gives a connection that matches no chain of its port to the default chain,
    # so that chain is what enforces "all-authenticated" on every port, declared or not.
    if open_to_plaintext:
        passthrough = naming.INBOUND_PASSTHROUGH_CLUSTER
        out.clusters.append(original_dst_cluster(passthrough, "none"))
        default_chain = tcp_chain(passthrough, None, passthrough, passthrough)
    else:
        default_chain = refusing_chain(naming.INBOUND_REFUSED_CHAIN)
    out.listeners.append(
        sidecar_listener(
            naming.INBOUND_LISTENER,
            INBOUND_PORT,
            base_pb2.INBOUND,
            chains,
            default_chain,
            # http_inspector only picks between plaintext chains.
            listener_filters(http_ports if open_to_plaintext else (), ports),
            state.settings.detect_timeout_ms,
        )
    )
    return out
