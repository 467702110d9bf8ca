"""Names of the Envoy resources a sidecar runs.

Other stages (the ADS server, viz, tests, operators reading config dumps) rely on
these names, and versions are content hashes, so a name must depend only on what
it names.
"""

from __future__ import annotations

from typing import Literal

from isthmus.model.resources import ServiceAddress

# Service DNS suffix, as in `svc.ns.svc.cluster.local`; fixed on both platforms.
SERVICE_DOMAIN = "svc.cluster.local"

OUTBOUND_LISTENER = "outbound"
INBOUND_LISTENER = "inbound"
# ORIGINAL_DST clusters for connections that match no declared service or port.
PASSTHROUGH_CLUSTER = "passthrough"
INBOUND_PASSTHROUGH_CLUSTER = "inbound-passthrough"
# The inbound default chain of a pod that admits mTLS only: it closes what it gets.
INBOUND_REFUSED_CHAIN = "inbound-refused"

# How the inbound sidecar speaks to the app: as the original client did (the
# outbound sidecar tells it in ORIG_PROTO_HEADER), or as the downstream does.
InboundKind = Literal["http1", "http2", "tcp", "downstream"]


def service_host(svc: ServiceAddress) -> str:
    return f"{svc.name}.{svc.namespace}.{SERVICE_DOMAIN}"


def outbound_cluster(svc: ServiceAddress, port: int) -> str:
    """The HTTP cluster of a service port; also the name of the port's ClusterLoadAssignment,
    which its TCP cluster shares (through eds_cluster_config.service_name)."""
    return f"outbound|{port}|{service_host(svc)}"


def outbound_tcp_cluster(svc: ServiceAddress, port: int) -> str:
    """Opaque traffic to a service port: its own cluster, because mTLS towards a peer
    sidecar says in ALPN what the connection carries, and ALPN is set per cluster."""
    return f"{outbound_cluster(svc, port)}|tcp"


def outbound_route(svc: ServiceAddress, port: int) -> str:
    return f"outbound|{port}|{service_host(svc)}"


def outbound_stat_prefix(svc: ServiceAddress, port: int) -> str:
    # Envoy's default tag extractors end a cluster or HCM name at the first dot,
    # so stats use a dot-free name; service and namespace names never contain "|".
    return f"outbound|{port}|{svc.name}|{svc.namespace}"


def inbound_route(port: int) -> str:
    return f"inbound|{port}"


def inbound_cluster(port: int, kind: InboundKind) -> str:
    if kind == "downstream":
        return f"inbound|{port}"
    return f"inbound|{port}|{kind}"


def inbound_stat_prefix(port: int) -> str:
    return f"inbound|{port}"


def inbound_unmeshed_stat_prefix(port: int) -> str:
    """Stats of connections that reach the port without a peer sidecar's mTLS, counted apart
    from the mesh's own so that viz can show who got in unauthenticated."""
    return f"inbound|{port}|unmeshed"
