"""Who talks to whom: edges between workloads, from what their sidecars counted. Pure.

An edge is source -> destination with the identities each side proved and whether
the connections were mTLS. Each meshed source's sidecar knows its own side: per
service endpoint, how many connections and requests it sent, which identity it
required that endpoint to present (the SPIFFE ID in the endpoint's metadata,
matched exactly during the handshake), and whether handshakes completed on that
service's cluster. The client identity is what the source's live certificate
says. A client outside the mesh has no sidecar to ask; its plaintext connections
are counted by the destination's inbound sidecar, apart from the mesh's own, and
show up as the source "(unmeshed)".

Figures are cumulative since each sidecar started, and cover the endpoints a
sidecar knows now: a pod that has gone takes its counters with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from isthmus.model.index import ClusterState
from isthmus.model.mesh import spiffe_id
from isthmus.model.resources import Pod, selector_matches
from isthmus.viz.admin import AdminReply, PodRef
from isthmus.viz.envoy_admin import (
    CERTS,
    CLUSTERS,
    ENDPOINTS,
    AdminFormatError,
    EndpointMetadata,
    UpstreamCluster,
    parse_certs,
    parse_clusters,
    parse_endpoints,
    parse_stats,
    stats_path,
)
from isthmus.xds.translate import naming
from isthmus.xds.translate.inbound import inbound_ports

UNMESHED = "(unmeshed)"
# Handshakes per outbound cluster, and what the inbound side counts of clients outside the mesh.
EDGE_STATS = stats_path(
    r"^(cluster\.outbound\|[^.]*\.ssl\.handshake"
    rf"|(http|tcp)\.(inbound\|[0-9]+\|unmeshed|{re.escape(naming.INBOUND_PASSTHROUGH_CLUSTER)})"
    r"\.downstream_(cx|rq)_total)$"
)
EDGE_PATHS = (CLUSTERS, CERTS, ENDPOINTS, EDGE_STATS)
"""The admin pages `edges` reads from every sidecar."""

Transport = Literal["mtls", "plaintext", "mtls-failed"]
"""mtls: handshakes completed, the server proved the identity required of it.
plaintext: no mesh TLS (an endpoint without a sidecar, or a client outside the mesh).
mtls-failed: mTLS was required, but no handshake on that service's cluster ever completed."""


@dataclass(frozen=True, order=True)
class Peer:
    """One end of an edge: a pod, or a deployment once pods are added up."""

    namespace: str
    deployment: str
    pod: str
    """"" at the deployment level."""
    meshed: bool = True

    @property
    def name(self) -> str:
        if not self.namespace:
            return UNMESHED
        return self.pod or self.deployment

    def as_dict(self) -> dict[str, object]:
        return {
            "namespace": self.namespace or None,
            "deployment": self.deployment or None,
            "pod": self.pod or None,
            "meshed": self.meshed,
        }


OUTSIDE = Peer("", "", "", meshed=False)
"""Clients outside the mesh: their sidecar-less connections say nothing of who they are."""


@dataclass(frozen=True)
class Edge:
    source: Peer
    destination: Peer
    service: str
    """The destination service ("" when the traffic was not addressed to one)."""
    client_id: str
    """The SPIFFE ID the client presented ("" when it presented none)."""
    server_id: str
    """The SPIFFE ID the client required of the server and the handshake proved ("" for none)."""
    transport: Transport
    connections: int
    requests: int
    """HTTP requests (opaque TCP counts connections only)."""

    @property
    def key(self) -> tuple[Peer, Peer, str, str, str, str]:
        return (self.source, self.destination, self.service, self.client_id, self.server_id, self.transport)

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source.as_dict(),
            "destination": self.destination.as_dict(),
            "service": self.service or None,
            "client_id": self.client_id or None,
            "server_id": self.server_id or None,
            "mtls": self.transport == "mtls",
            "transport": self.transport,
            "connections": self.connections,
            "requests": self.requests,
        }


@dataclass(frozen=True)
class Unscraped:
    pod: PodRef
    reason: str


@dataclass(frozen=True)
class EdgeReport:
    edges: tuple[Edge, ...]
    unscraped: tuple[Unscraped, ...] = ()


@dataclass(frozen=True)
class SidecarView:
    """The parts of one sidecar's admin API that edges need."""

    pod: PodRef
    clusters: tuple[UpstreamCluster, ...]
    stats: Mapping[str, int]
    identities: tuple[str, ...]
    endpoints: Mapping[tuple[str, str, int], EndpointMetadata]


def read_sidecar(reply: AdminReply) -> SidecarView:
    """Raises AdminFormatError (or KeyError for a page not scraped) on what cannot be read."""
    b = reply.bodies
    return SidecarView(
        pod=reply.pod,
        clusters=tuple(parse_clusters(b[CLUSTERS])),
        stats=parse_stats(b[EDGE_STATS]),
        identities=parse_certs(b[CERTS]).uris,
        endpoints=parse_endpoints(b[ENDPOINTS]),
    )


def outbound_service(cluster: str) -> tuple[str, str, bool] | None:
    """(namespace, service, opaque TCP) of a service port's outbound cluster; None for other clusters.

    The inverse of `naming.outbound_cluster` and `naming.outbound_tcp_cluster`.
    """
    parts = cluster.split("|")
    tcp = len(parts) == 4 and parts[3] == "tcp"
    if parts[0] != "outbound" or len(parts) != (4 if tcp else 3) or not parts[1].isdigit():
        return None
    host = parts[2].removesuffix(f".{naming.SERVICE_DOMAIN}")
    name, dot, namespace = host.partition(".")
    if host == parts[2] or not (dot and name and namespace) or "." in namespace:
        return None
    return namespace, name, tcp


class _Cluster:
    """Lookups into one cluster's model."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.by_ip = {p.ip: p for p in state.pods}

    def peer(self, pod: Pod) -> Peer:
        return Peer(pod.namespace, pod.deployment, pod.name, pod.injected)

    def destination(self, namespace: str, address: str, meta: EndpointMetadata | None) -> tuple[Peer, Pod | None]:
        pod = self.state.pod(namespace, meta.pod) if meta and meta.pod else None
        pod = pod or self.by_ip.get(address)
        if pod is not None:
            return self.peer(pod), pod
        # Gone from the model since the sidecar last heard: name what the sidecar knows.
        return Peer(namespace, "", (meta.pod if meta else None) or address, bool(meta and meta.identity)), None

    def services_on(self, pod: Pod, port: int) -> str:
        names = sorted(
            s.name
            for s in self.state.services
            if s.namespace == pod.namespace
            and selector_matches(s.service.selector, pod.labels)
            and any(pod.resolve_port(sp.target_port) == port for sp in s.service.ports)
        )
        return ",".join(names)


def _outbound(view: SidecarView, source: Peer, model: _Cluster) -> Iterable[Edge]:
    trust_domain = model.state.settings.trust_domain
    for cluster in view.clusters:
        service = outbound_service(cluster.name)
        if service is None:
            continue
        namespace, name, tcp = service
        handshakes = view.stats.get(f"cluster.{cluster.stat_name}.ssl.handshake", 0)
        for host in cluster.hosts:
            connections, requests = host.count("cx_total"), 0 if tcp else host.count("rq_total")
            if not (connections or requests):
                continue
            meta = view.endpoints.get((cluster.eds_name, host.address, host.port))
            destination, pod = model.destination(namespace, host.address, meta)
            if meta is not None:
                required = meta.identity or ""
            else:  # not in the dump (it changed between two pages): what the model says it requires
                required = spiffe_id(trust_domain, namespace, pod.service_account) if pod and pod.injected else ""
            transport: Transport = "plaintext" if not required else ("mtls" if handshakes else "mtls-failed")
            yield Edge(
                source=source,
                destination=destination,
                service=name,
                client_id=", ".join(view.identities) if transport == "mtls" else "",
                server_id=required,
                transport=transport,
                connections=connections,
                requests=requests,
            )


def _from_outside(view: SidecarView, pod: Pod, model: _Cluster) -> Iterable[Edge]:
    destination = model.peer(pod)

    def edge(service: str, connections: int, requests: int) -> Edge:
        return Edge(OUTSIDE, destination, service, "", "", "plaintext", connections, requests)

    for port in inbound_ports(model.state, pod):
        prefix = naming.inbound_unmeshed_stat_prefix(port)
        requests = view.stats.get(f"http.{prefix}.downstream_rq_total", 0)
        connections = sum(view.stats.get(f"{kind}.{prefix}.downstream_cx_total", 0) for kind in ("http", "tcp"))
        if connections or requests:
            yield edge(model.services_on(pod, port), connections, requests)
    # Ports no service or container declares; only open where plaintext is let in at all.
    if stray := view.stats.get(f"tcp.{naming.INBOUND_PASSTHROUGH_CLUSTER}.downstream_cx_total", 0):
        yield edge("", stray, 0)


def merge(edges: Iterable[Edge]) -> tuple[Edge, ...]:
    """Add up edges with the same ends, service, identities and transport; sorted."""
    summed: dict[tuple[Peer, Peer, str, str, str, str], Edge] = {}
    for e in edges:
        had = summed.get(e.key)
        summed[e.key] = (
            e
            if had is None
            else replace(had, connections=had.connections + e.connections, requests=had.requests + e.requests)
        )
    return tuple(sorted(summed.values(), key=_order))


def _order(e: Edge) -> tuple[object, ...]:
    return (e.source.namespace == "", e.source, e.destination, e.service, e.transport, e.client_id, e.server_id)


def pod_edges(state: ClusterState, replies: Mapping[PodRef, AdminReply]) -> EdgeReport:
    """Edges between pods of one cluster, from the replies of its sidecars to `EDGE_PATHS`."""
    model = _Cluster(state)
    edges: list[Edge] = []
    unscraped: list[Unscraped] = []
    for ref in sorted(replies):
        reply = replies[ref]
        if not reply.ok:
            unscraped.append(Unscraped(ref, reply.error or "no answer"))
            continue
        try:
            view = read_sidecar(reply)
        except (AdminFormatError, KeyError) as e:
            unscraped.append(Unscraped(ref, f"its admin API answered something unexpected ({e})"))
            continue
        pod = state.pod(ref.namespace, ref.name)
        source = model.peer(pod) if pod else Peer(ref.namespace, "", ref.name)
        edges += _outbound(view, source, model)
        if pod is not None:
            edges += _from_outside(view, pod, model)
    return EdgeReport(merge(edges), tuple(unscraped))


def by_deployment(report: EdgeReport) -> EdgeReport:
    """The same edges with each pod replaced by its deployment, and their figures added up."""

    def up(p: Peer) -> Peer:
        return p if not p.deployment else replace(p, pod="")

    return replace(
        report, edges=merge(replace(e, source=up(e.source), destination=up(e.destination)) for e in report.edges)
    )


def in_namespace(report: EdgeReport, namespace: str) -> EdgeReport:
    """Edges with either end in `namespace` (the source of traffic from outside the mesh has none)."""
    return replace(
        report,
        edges=tuple(e for e in report.edges if namespace in (e.source.namespace, e.destination.namespace)),
    )
