"""A cluster's multi-cluster gateway: which exported service a caller from another cluster reaches.

The gateway terminates an outer mTLS connection on GATEWAY_PORT (TLS 1.3, a
client certificate that chains to the mesh's trust bundle and names an
identity of the trust domain; anything else fails the handshake), picks the
exported service port by the SNI the caller sent, and forwards the bytes inside
as opaque TCP to one of that port's meshed endpoints. Those bytes are the
caller's own mTLS session with the backend's sidecar (TLS inside TLS), so the
backend's inbound sidecar verifies the caller's certificate itself and hands
the caller's SPIFFE ID to the app, and the caller's sidecar checks the
backend's identity: end to end, with the gateway unable to read or alter the
traffic (docs/multicluster.md says why this design).

SNI, for a service `svc` in namespace `ns`:
`<port>.svc.ns.svc.cluster.local` for any TCP port of the service, and
`svc.ns.svc.cluster.local` for a service with exactly one TCP port. An SNI that
names no exported service matches no filter chain, and Envoy closes the
connection before the handshake: nothing but exported services is reachable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from envoy.config.listener.v3 import listener_components_pb2 as components
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2

from isthmus.model.index import ClusterState
from isthmus.model.mesh import (
    EXPORTED_LABEL,
    GATEWAY_NAMESPACE,
    IDENTITY_DIR,
    INBOUND_PORT,
    MIRROR_LABEL,
    is_gateway,
    node_id,
)
from isthmus.model.resources import Endpoint, Pod, ServiceAddress, ServicePort
from isthmus.xds.snapshot import Snapshot
from isthmus.xds.translate import naming
from isthmus.xds.translate.chains import TLS, refusing_chain, tcp_chain
from isthmus.xds.translate.clusters import eds_cluster, load_assignment
from isthmus.xds.translate.fragments import Resources, millis, pack, socket_address
from isthmus.xds.translate.tls import MeshTls, downstream_mtls

GATEWAY_LISTENER = "gateway"
GATEWAY_PORT = INBOUND_PORT
# A caller that connects and says nothing is dropped instead of holding a socket.
HELLO_TIMEOUT_MS = 5000


@dataclass(frozen=True)
class ExportedPort:
    """One TCP port of an exported service, as the gateway serves it."""

    svc: ServiceAddress
    port: ServicePort
    server_names: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]

    @property
    def cluster(self) -> str:
        return f"gateway|{self.port.port}|{naming.service_host(self.svc)}"

    @property
    def stat_prefix(self) -> str:
        return f"gateway|{self.port.port}|{self.svc.name}|{self.svc.namespace}"


def is_exported(svc: ServiceAddress) -> bool:
    """Exported by its label; never the gateway's own namespace (nothing there is a workload),
    and never a mirror: a mirror has no endpoints here, and re-exporting one would let
    calls loop between clusters."""
    return (
        svc.namespace != GATEWAY_NAMESPACE
        and svc.service.meta.label(EXPORTED_LABEL) == "true"
        and svc.service.meta.label(MIRROR_LABEL) != "true"
    )


def server_names(svc: ServiceAddress, port: ServicePort, only_port: bool) -> tuple[str, ...]:
    host = naming.service_host(svc)
    return (f"{port.port}.{host}", host) if only_port else (f"{port.port}.{host}",)


def exported_ports(state: ClusterState) -> list[ExportedPort]:
    out: list[ExportedPort] = []
    for svc in sorted(state.services, key=lambda s: (s.namespace, s.name)):
        if not is_exported(svc):
            continue
        tcp = sorted({p.port: p for p in svc.service.ports if p.protocol == "TCP"}.values(), key=lambda p: p.port)
        for port in tcp:
            # Only endpoints with a sidecar: the caller's inner TLS needs one to end at.
            meshed = tuple(e for e in state.endpoints(svc, port) if e.meshed)
            out.append(ExportedPort(svc, port, server_names(svc, port, len(tcp) == 1), meshed))
    return out


def _listener(chains: Iterable[components.FilterChain]) -> listener_pb2.Listener:
    tls_inspector = components.ListenerFilter(
        name="envoy.filters.listener.tls_inspector", typed_config=pack(tls_inspector_pb2.TlsInspector())
    )
    return listener_pb2.Listener(
        name=GATEWAY_LISTENER,
        address=socket_address("0.0.0.0", GATEWAY_PORT),
        listener_filters=[tls_inspector],
        listener_filters_timeout=millis(HELLO_TIMEOUT_MS),
        filter_chains=list(chains),
        # Envoy wants a chain even when nothing is exported; this one closes what it gets.
        default_filter_chain=refusing_chain(f"{GATEWAY_LISTENER}-refused"),
    )


def build_gateway(state: ClusterState, pod: Pod, identity_dir: str = IDENTITY_DIR) -> Snapshot:
    """The gateway pod's whole config. Raises ValueError for a pod that is not a gateway."""
    if not is_gateway(pod.namespace, pod.annotations):
        raise ValueError(f"pod {pod.namespace}/{pod.name} is not a gateway")
    mesh = MeshTls(identity_dir=identity_dir, trust_domain=state.settings.trust_domain)
    out = Resources()
    chains = []
    for ep in exported_ports(state):
        match = components.FilterChainMatch(server_names=list(ep.server_names), transport_protocol=TLS)
        chains.append(tcp_chain(ep.cluster, match, ep.stat_prefix, ep.cluster, downstream_mtls(mesh, ())))
        # Raw TCP upstream: the caller's inner mTLS passes through as it is.
        out.clusters.append(eds_cluster(ep.cluster, ep.stat_prefix, "none", ep.cluster))
        out.endpoints.append(load_assignment(ep.cluster, ep.endpoints, lambda _e: None))
    out.listeners.append(_listener(chains))
    return Snapshot(resources=out.by_type())


def build_gateways(state: ClusterState, identity_dir: str = IDENTITY_DIR) -> dict[str, Snapshot]:
    """Every gateway pod's snapshot, keyed by node id."""
    return {
        node_id(p.cluster, p.namespace, p.name): build_gateway(state, p, identity_dir)
        for p in state.pods
        if p.injected and is_gateway(p.namespace, p.annotations)
    }
