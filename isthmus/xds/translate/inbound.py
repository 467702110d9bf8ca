"""Inbound: what connections to this pod's ports become before they reach the app.

A peer sidecar may have upgraded a request to HTTP/2; it says what the client
originally spoke in ORIG_PROTO_HEADER, and the route picks a cluster that speaks
exactly that to the app. Requests from outside the mesh carry no such header and
reach the app in the protocol they arrived in.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.type.matcher.v3 import string_pb2

from isthmus.model.index import ClusterState
from isthmus.model.mesh import ADMIN_PORT, INBOUND_PORT, ORIG_PROTO_HEADER, OUTBOUND_PORT
from isthmus.model.resources import Pod, selector_matches
from isthmus.xds.translate import naming
from isthmus.xds.translate.chains import chain_match, http_chain, loop_guards, sidecar_listener, tcp_chain
from isthmus.xds.translate.clusters import original_dst_cluster
from isthmus.xds.translate.fragments import DISABLED, Resources

RESERVED_PORTS = frozenset({OUTBOUND_PORT, INBOUND_PORT, ADMIN_PORT})

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
        # Routing has already read it by the time headers are rewritten; the app never sees it.
        request_headers_to_remove=[ORIG_PROTO_HEADER],
    )
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[vhost])


def build_inbound(state: ClusterState, pod: Pod) -> Resources:
    out = Resources()
    chains = loop_guards()
    inspect_ports: list[int] = []
    for port in inbound_ports(state, pod):
        tcp_cluster = naming.inbound_cluster(port, "tcp")
        stat_prefix = naming.inbound_stat_prefix(port)
        if port not in pod.opaque_ports:
            route = _route_config(port)
            out.routes.append(route)
            inspect_ports.append(port)
            chains.append(http_chain(f"inbound|{port}|http", chain_match(port, None, True), stat_prefix, route.name))
            out.clusters += [
                original_dst_cluster(naming.inbound_cluster(port, "http1"), "http1"),
                original_dst_cluster(naming.inbound_cluster(port, "http2"), "http2"),
                original_dst_cluster(naming.inbound_cluster(port, "downstream"), "downstream"),
            ]
        chains.append(tcp_chain(tcp_cluster, chain_match(port, None, False), stat_prefix, tcp_cluster))
        out.clusters.append(original_dst_cluster(tcp_cluster, "none"))

    passthrough = naming.INBOUND_PASSTHROUGH_CLUSTER
    out.clusters.append(original_dst_cluster(passthrough, "none"))
    out.listeners.append(
        sidecar_listener(
            naming.INBOUND_LISTENER,
            INBOUND_PORT,
            base_pb2.INBOUND,
            chains,
            tcp_chain(passthrough, None, passthrough, passthrough),
            inspect_ports,
            state.settings.detect_timeout_ms,
        )
    )
    return out
