"""The caller's side of a cross-cluster call: what a sidecar does with a mirror service.

A mirror (`isthmus.model.mesh.MIRROR_LABEL`) gets the same VIP chains, routes,
retries and timeouts as a local service (`outbound` builds those); only its
clusters differ. Each mirror port's cluster opens the caller's own mTLS session
with the remote backend's sidecar (inner: SNI and ALPN as to a local peer, the
backend's identity checked) to an Envoy internal listener; that listener's TCP
proxy carries the bytes to the remote cluster's gateway inside a second mTLS
session (outer: SNI `<port>.<svc>.<ns>.svc.cluster.local`, which the gateway
routes on, and the gateway's identity checked). The gateway ends the outer
session only, so the backend verifies the caller itself (docs/multicluster.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from isthmus.model.mesh import (
    MIRROR_CLUSTER_LABEL,
    MIRROR_GATEWAY_ALIVE_ANNOTATION,
    MIRROR_GATEWAY_ANNOTATION,
    MIRROR_GATEWAY_IDENTITY_ANNOTATION,
    MIRROR_IDENTITIES_ANNOTATION,
    MIRROR_LABEL,
)
from isthmus.model.resources import ANNOTATION_OPAQUE_PORTS, ServiceAddress, parse_port_list
from isthmus.xds.translate import naming
from isthmus.xds.translate.chains import tcp_chain
from isthmus.xds.translate.clusters import UpstreamProtocol, eds_cluster
from isthmus.xds.translate.fragments import Resources, pack, socket_address
from isthmus.xds.translate.tls import MeshTls, upstream_mtls


@dataclass(frozen=True)
class RemoteTarget:
    """Where a mirror's traffic goes, as its labels and annotations say."""

    cluster_name: str
    """The cluster the original service lives in."""
    service: str
    """The original service's name there (same namespace as the mirror)."""
    namespace: str
    gateway_ip: str
    gateway_port: int
    gateway_identity: str
    identities: tuple[str, ...]
    """Any of these the backend's sidecar may present; never empty."""
    opaque_ports: frozenset[int]
    gateway_alive: bool = True
    """False while the link's probes find the gateway dead: no endpoints, so calls fail at once."""

    def sni(self, port: int) -> str:
        """What the remote gateway routes on, naming one port of the original service."""
        return f"{port}.{self.service}.{self.namespace}.{naming.SERVICE_DOMAIN}"


def is_mirror(svc: ServiceAddress) -> bool:
    return svc.service.meta.label(MIRROR_LABEL) == "true"


def remote_target(svc: ServiceAddress) -> RemoteTarget | None:
    """The mirror's target; None for a service that is no mirror, or a mirror whose
    annotations are incomplete or malformed (it is then served as a service without
    endpoints, so calls to it fail at once instead of going anywhere else)."""
    meta = svc.service.meta
    cluster = meta.label(MIRROR_CLUSTER_LABEL) or ""
    if not is_mirror(svc) or not cluster or not svc.name.endswith(f"-{cluster}") or svc.service.selector:
        return None
    gateway = _host_port(meta.annotation(MIRROR_GATEWAY_ANNOTATION) or "")
    gateway_identity = meta.annotation(MIRROR_GATEWAY_IDENTITY_ANNOTATION) or ""
    identities = tuple(
        sorted({i.strip() for i in (meta.annotation(MIRROR_IDENTITIES_ANNOTATION) or "").split(",") if i.strip()})
    )
    if gateway is None or not _spiffe(gateway_identity) or not identities or not all(map(_spiffe, identities)):
        return None
    return RemoteTarget(
        cluster_name=cluster,
        service=svc.name.removesuffix(f"-{cluster}"),
        namespace=svc.namespace,
        gateway_ip=gateway[0],
        gateway_port=gateway[1],
        gateway_identity=gateway_identity,
        identities=identities,
        opaque_ports=parse_port_list(meta.annotation(ANNOTATION_OPAQUE_PORTS) or ""),
        gateway_alive=meta.annotation(MIRROR_GATEWAY_ALIVE_ANNOTATION) != "false",
    )


def _spiffe(value: str) -> bool:
    return value.startswith("spiffe://") and "," not in value


def _host_port(value: str) -> tuple[str, int] | None:
    host, _, port = value.rpartition(":")
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
        number = int(port)
    except ValueError:
        return None
    return (str(ip), number) if 0 < number < 65536 and not ip.is_unspecified else None


def tunnel_listener(svc: ServiceAddress, port: int) -> str:
    """The internal listener that carries one mirror port's inner sessions to the gateway."""
    return f"remote|{port}|{naming.service_host(svc)}"


def gateway_cluster(svc: ServiceAddress, port: int) -> str:
    return f"remote|{port}|{naming.service_host(svc)}|gateway"


def _mtls_to_any(mesh: MeshTls, peer_ids: Sequence[str], sni: str, alpn: Sequence[str]) -> base_pb2.TransportSocket:
    """`upstream_mtls`, accepting any of several identities (replicas under different accounts)."""
    socket = upstream_mtls(mesh, peer_ids[0], sni, alpn)
    context = tls_pb2.UpstreamTlsContext()
    socket.typed_config.Unpack(context)
    matchers = context.common_tls_context.combined_validation_context.default_validation_context
    for peer in peer_ids[1:]:
        matchers.match_typed_subject_alt_names.append(
            common_pb2.SubjectAltNameMatcher(
                san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=string_pb2.StringMatcher(exact=peer)
            )
        )
    socket.typed_config.CopyFrom(pack(context))
    return socket


def inner_cluster(
    target: RemoteTarget,
    port: int,
    mesh: MeshTls,
    name: str,
    stat_name: str,
    protocol: UpstreamProtocol,
    alpn: tuple[str, ...],
    assignment: str,
) -> cluster_pb2.Cluster:
    """A mirror port's cluster: the caller's mTLS with the remote backend, into the tunnel."""
    cluster = eds_cluster(name, stat_name, protocol, assignment)
    # Its one endpoint is an internal listener: no socket, so nothing to mark or bind.
    cluster.ClearField("upstream_bind_config")
    cluster.transport_socket.CopyFrom(_mtls_to_any(mesh, target.identities, target.sni(port), alpn))
    return cluster


def _assignment(name: str, address: address_pb2.Address | None) -> endpoint_pb2.ClusterLoadAssignment:
    """One endpoint at `address`; none for None (a dead gateway: the caller gets a 503 at once)."""
    if address is None:
        return endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    endpoint = endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=address))
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])]
    )


def tunnel(target: RemoteTarget, svc: ServiceAddress, port: int, mesh: MeshTls, assignment: str) -> Resources:
    """The rest of one mirror port: the inner clusters' endpoint (the internal listener),
    that listener, and its cluster: outer mTLS to the remote gateway."""
    listener_name, outer = tunnel_listener(svc, port), gateway_cluster(svc, port)
    stat = f"remote|{port}|{svc.name}|{svc.namespace}"
    out = Resources()
    internal = address_pb2.Address(
        envoy_internal_address=address_pb2.EnvoyInternalAddress(server_listener_name=listener_name)
    )
    # Only an endpoint update: the clusters and listeners stay, so a gateway coming back needs no warming.
    out.endpoints.append(_assignment(assignment, internal if target.gateway_alive else None))
    out.listeners.append(
        listener_pb2.Listener(
            name=listener_name,
            internal_listener=listener_pb2.Listener.InternalListenerConfig(),
            filter_chains=[tcp_chain(listener_name, None, stat, outer)],
        )
    )
    cluster = eds_cluster(outer, f"{stat}|gateway", "none", outer)
    # No ALPN: the gateway forwards bytes and never looks at what they carry.
    cluster.transport_socket.CopyFrom(upstream_mtls(mesh, target.gateway_identity, target.sni(port), ()))
    out.clusters.append(cluster)
    out.endpoints.append(_assignment(outer, socket_address(target.gateway_ip, target.gateway_port)))
    return out
