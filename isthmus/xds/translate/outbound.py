"""Outbound: what the app's connections to service VIPs (and anything else) become.

Each TCP port of each Service with a cluster IP gets an HTTP chain and cluster (when
the port is not opaque) and a TCP chain and cluster; both clusters read one
assignment of endpoints. Towards an endpoint with a sidecar every connection is
mTLS that checks the identity the model says the endpoint runs as; endpoints
without one get plaintext. Connections to any other address pass through to where
they were going.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from isthmus.model.index import ClusterState
from isthmus.model.mesh import ALPN_HTTP, ALPN_TCP, ORIG_PROTO_HEADER, OUTBOUND_PORT, spiffe_id
from isthmus.model.resources import Endpoint, ServiceAddress, ServicePort
from isthmus.xds.translate import naming
from isthmus.xds.translate.chains import (
    chain_match,
    http_chain,
    listener_filters,
    loop_guards,
    sidecar_listener,
    tcp_chain,
)
from isthmus.xds.translate.clusters import (
    UpstreamProtocol,
    eds_cluster,
    load_assignment,
    original_dst_cluster,
)
from isthmus.xds.translate.fragments import DISABLED, Resources
from isthmus.xds.translate.remote import RemoteTarget, inner_cluster, remote_target, tunnel
from isthmus.xds.translate.tls import MeshTls, socket_matches, unmatched_endpoint_socket


@dataclass(frozen=True)
class VipPort:
    """One service port as the outbound listener sees it: a VIP prefix and a port."""

    svc: ServiceAddress
    port: ServicePort
    prefix: str
    endpoints: tuple[Endpoint, ...]
    opaque: bool
    remote: RemoteTarget | None = None
    """Set for a mirror of a service in another cluster (`remote`); endpoints are then empty."""

    @property
    def cluster(self) -> str:
        """The HTTP cluster, and the name of the endpoint assignment both clusters read."""
        return naming.outbound_cluster(self.svc, self.port.port)

    @property
    def tcp_cluster(self) -> str:
        return naming.outbound_tcp_cluster(self.svc, self.port.port)

    @property
    def stat_prefix(self) -> str:
        return naming.outbound_stat_prefix(self.svc, self.port.port)

    def identity(self, trust_domain: str, ep: Endpoint) -> str | None:
        """What the endpoint's sidecar must present; None when it has no sidecar."""
        return spiffe_id(trust_domain, self.svc.namespace, ep.service_account) if ep.meshed else None

    @property
    def upgrades_to_http2(self) -> bool:
        """Every peer has a sidecar whose inbound accepts h2c, and between
        sidecars HTTP/2 measured better; otherwise keep the client's protocol."""
        return self.remote is not None or all(e.meshed for e in self.endpoints)


def vip_prefix(cluster_ip: str) -> str | None:
    """ "ip/32" (or /128) for a routable VIP; None for headless ("None", "") and junk."""
    try:
        ip = ipaddress.ip_address(cluster_ip)
    except ValueError:
        return None
    return None if ip.is_unspecified else f"{ip}/{ip.max_prefixlen}"


def vip_ports(state: ClusterState) -> list[VipPort]:
    """Every routable (VIP, port) once, in a stable order.

    Envoy rejects a listener whose filter chains match the same traffic, so when
    two services share a VIP and port (or a service lists a port twice) the first
    by namespace and name wins; the others would be unreachable anyway.
    """
    out: list[VipPort] = []
    seen_matches: set[tuple[str, int]] = set()
    seen_clusters: set[str] = set()
    for svc in sorted(state.services, key=lambda s: (s.namespace, s.name, s.cluster_ip)):
        prefix = vip_prefix(svc.cluster_ip)
        if prefix is None:
            continue
        remote = remote_target(svc)
        for port in sorted(svc.service.ports, key=lambda p: (p.port, p.name)):
            if port.protocol != "TCP":
                continue
            if remote is None:
                vp = VipPort(svc, port, prefix, state.endpoints(svc, port), state.port_is_opaque(svc, port))
            else:
                vp = VipPort(svc, port, prefix, (), port.port in remote.opaque_ports, remote)
            if (prefix, port.port) in seen_matches or vp.cluster in seen_clusters:
                continue
            seen_matches.add((prefix, port.port))
            seen_clusters.add(vp.cluster)
            out.append(vp)
    return out


# Retry only what never reached the app (no connection, stream refused, reset before the
# request went out), so a replica that vanished between two endpoint updates costs
# the client nothing and no request is ever run twice.
SAFE_RETRIES = rc.RetryPolicy(retry_on="connect-failure,refused-stream,reset-before-request")
SAFE_RETRIES.num_retries.value = 2


def _route_config(vp: VipPort) -> route_pb2.RouteConfiguration:
    name = naming.outbound_route(vp.svc, vp.port.port)
    vhost = rc.VirtualHost(
        name=name,
        domains=["*"],
        # No route timeout: long gRPC streams and slow downloads must survive.
        routes=[rc.Route(match=rc.RouteMatch(prefix="/"), route=rc.RouteAction(cluster=vp.cluster, timeout=DISABLED))],
        retry_policy=SAFE_RETRIES,
    )
    if vp.upgrades_to_http2:
        # The peer's inbound sidecar reads this to speak the client's protocol to its app.
        vhost.request_headers_to_add.append(
            base_pb2.HeaderValueOption(
                header=base_pb2.HeaderValue(key=ORIG_PROTO_HEADER, value="%PROTOCOL%"),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
            )
        )
    else:
        # Not ours to forward: an app must not steer a peer sidecar's protocol choice.
        vhost.request_headers_to_remove.append(ORIG_PROTO_HEADER)
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[vhost])


def _service_cluster(
    vp: VipPort, mesh: MeshTls, name: str, stat_name: str, protocol: UpstreamProtocol, alpn: tuple[str, ...]
) -> cluster_pb2.Cluster:
    """One of a service port's clusters: mTLS checking each endpoint's identity, plaintext
    to endpoints without a sidecar; for a mirror, the tunnel to the remote backend."""
    if vp.remote is not None:
        return inner_cluster(vp.remote, vp.port.port, mesh, name, stat_name, protocol, alpn, vp.cluster)
    cluster = eds_cluster(name, stat_name, protocol, vp.cluster)
    # From every endpoint, ready or not, so a readiness flap changes EDS only: a CDS
    # update would replace the cluster and drain its connections.
    identities = [vp.identity(mesh.trust_domain, ep) for ep in vp.endpoints]
    cluster.transport_socket_matches.extend(
        socket_matches(
            mesh, [i for i in identities if i is not None], None in identities, naming.service_host(vp.svc), alpn
        )
    )
    cluster.transport_socket.CopyFrom(unmatched_endpoint_socket(mesh))
    return cluster


def build_outbound(state: ClusterState, mesh: MeshTls) -> Resources:
    vps = vip_ports(state)
    # http_inspector can be switched off by destination port only, not by VIP, so a
    # port that is opaque for one service is treated as opaque for all of them.
    opaque_ports = {vp.port.port for vp in vps if vp.opaque}
    out = Resources()
    chains = loop_guards()
    inspect_ports: set[int] = set()
    for vp in vps:
        if vp.port.port not in opaque_ports:
            route = _route_config(vp)
            out.routes.append(route)
            inspect_ports.add(vp.port.port)
            chains.append(
                http_chain(f"{vp.cluster}|http", chain_match(vp.port.port, vp.prefix, True), vp.stat_prefix, route.name)
            )
            # HTTP/2 says so in ALPN; a cluster that keeps the client's protocol leaves ALPN
            # to each connection pool, which offers "h2" or "http/1.1" as it speaks.
            protocol: UpstreamProtocol = "http2" if vp.upgrades_to_http2 else "downstream"
            alpn = (ALPN_HTTP,) if protocol == "http2" else ()
            out.clusters.append(_service_cluster(vp, mesh, vp.cluster, vp.stat_prefix, protocol, alpn))
        chains.append(
            tcp_chain(f"{vp.cluster}|tcp", chain_match(vp.port.port, vp.prefix, False), vp.stat_prefix, vp.tcp_cluster)
        )
        out.clusters.append(_service_cluster(vp, mesh, vp.tcp_cluster, f"{vp.stat_prefix}|tcp", "none", (ALPN_TCP,)))
        if vp.remote is None:
            out.endpoints.append(
                load_assignment(vp.cluster, vp.endpoints, functools.partial(vp.identity, mesh.trust_domain))
            )
        else:
            out.extend(tunnel(vp.remote, vp.svc, vp.port.port, mesh, vp.cluster))

    out.clusters.append(original_dst_cluster(naming.PASSTHROUGH_CLUSTER, "none"))
    out.listeners.append(
        sidecar_listener(
            naming.OUTBOUND_LISTENER,
            OUTBOUND_PORT,
            base_pb2.OUTBOUND,
            chains,
            tcp_chain(naming.PASSTHROUGH_CLUSTER, None, naming.PASSTHROUGH_CLUSTER, naming.PASSTHROUGH_CLUSTER),
            listener_filters(inspect_ports),
            state.settings.detect_timeout_ms,
        )
    )
    return out
