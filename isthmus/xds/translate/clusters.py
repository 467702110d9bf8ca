"""Upstream clusters and their endpoints: how a sidecar opens connections.

Every upstream socket carries PROXY_MARK so the pod's redirect rules let it out
instead of sending it back into the sidecar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, protocol_pb2, socket_option_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as upstream_http
from google.protobuf import struct_pb2, wrappers_pb2

from isthmus.model.mesh import PROXY_MARK
from isthmus.model.resources import Endpoint
from isthmus.xds.translate.fragments import ads, millis, pack, socket_address
from isthmus.xds.translate.tls import SOCKET_MATCH_KEY, endpoint_match_metadata

CONNECT_TIMEOUT_MS = 1000
SOL_SOCKET = 1
SO_MARK = 36
ENDPOINT_METADATA_KEY = "isthmus"
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

# "http1"/"http2": always speak that; "downstream": whatever the client spoke;
# "none": the cluster only carries TCP, so HTTP options would be noise.
UpstreamProtocol = Literal["http1", "http2", "downstream", "none"]


def marked_bind_config() -> address_pb2.BindConfig:
    return address_pb2.BindConfig(
        source_address=address_pb2.SocketAddress(address="0.0.0.0", port_value=0),
        socket_options=[
            socket_option_pb2.SocketOption(
                description="SO_MARK: let the sidecar's own connections past the pod's redirect",
                level=SOL_SOCKET,
                name=SO_MARK,
                int_value=PROXY_MARK,
                state=socket_option_pb2.SocketOption.STATE_PREBIND,
            )
        ],
    )


def _unlimited_circuit_breakers() -> circuit_breaker_pb2.CircuitBreakers:
    # Envoy's defaults (1024 connections/requests per cluster) would make the mesh
    # refuse load the app itself never limited; a transparent proxy adds no caps.
    most = wrappers_pb2.UInt32Value(value=2**32 - 1)
    return circuit_breaker_pb2.CircuitBreakers(
        thresholds=[
            circuit_breaker_pb2.CircuitBreakers.Thresholds(
                max_connections=most, max_pending_requests=most, max_requests=most, max_retries=most
            )
        ]
    )


def _http2_options() -> protocol_pb2.Http2ProtocolOptions:
    # allow_connect lets an HTTP/1.1 WebSocket upgrade cross an HTTP/2 hop as an
    # extended CONNECT (RFC 8441); the peer sidecar turns it back into an upgrade.
    return protocol_pb2.Http2ProtocolOptions(allow_connect=True)


def _protocol_options(protocol: UpstreamProtocol) -> upstream_http.HttpProtocolOptions | None:
    explicit = upstream_http.HttpProtocolOptions.ExplicitHttpConfig
    match protocol:
        case "http1":
            return upstream_http.HttpProtocolOptions(
                explicit_http_config=explicit(http_protocol_options=protocol_pb2.Http1ProtocolOptions())
            )
        case "http2":
            return upstream_http.HttpProtocolOptions(
                explicit_http_config=explicit(http2_protocol_options=_http2_options())
            )
        case "downstream":
            return upstream_http.HttpProtocolOptions(
                use_downstream_protocol_config=upstream_http.HttpProtocolOptions.UseDownstreamHttpConfig(
                    http_protocol_options=protocol_pb2.Http1ProtocolOptions(),
                    http2_protocol_options=_http2_options(),
                )
            )
        case "none":
            return None


def _base_cluster(name: str, protocol: UpstreamProtocol) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name,
        connect_timeout=millis(CONNECT_TIMEOUT_MS),
        upstream_bind_config=marked_bind_config(),
        circuit_breakers=_unlimited_circuit_breakers(),
    )
    options = _protocol_options(protocol)
    if options is not None:
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(options))
    return cluster


def eds_cluster(name: str, stat_name: str, protocol: UpstreamProtocol, assignment: str) -> cluster_pb2.Cluster:
    """A service port's cluster; its endpoints come over EDS as the assignment named
    `assignment`, which several clusters (HTTP and TCP to one port) may share."""
    cluster = _base_cluster(name, protocol)
    cluster.alt_stat_name = stat_name
    cluster.type = cluster_pb2.Cluster.EDS
    cluster.eds_cluster_config.eds_config.CopyFrom(ads())
    cluster.eds_cluster_config.service_name = assignment
    # Least request with two random choices: cheap, and it steers away from slow replicas.
    cluster.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST
    return cluster


def original_dst_cluster(name: str, protocol: UpstreamProtocol) -> cluster_pb2.Cluster:
    """Connects to wherever the intercepted connection was going (restored by original_dst)."""
    cluster = _base_cluster(name, protocol)
    cluster.type = cluster_pb2.Cluster.ORIGINAL_DST
    cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    return cluster


# The identity an endpoint's sidecar presents, or None for an endpoint without a sidecar.
IdentityOf = Callable[[Endpoint], str | None]


def endpoint_metadata(ep: Endpoint, identity: str | None) -> base_pb2.Metadata:
    """Which transport socket Envoy uses towards the endpoint, and what viz reads."""
    fields = struct_pb2.Struct()
    fields.update({"meshed": ep.meshed, "pod": ep.pod})
    return base_pb2.Metadata(
        filter_metadata={ENDPOINT_METADATA_KEY: fields, SOCKET_MATCH_KEY: endpoint_match_metadata(identity)}
    )


def load_assignment(
    cluster_name: str, endpoints: Iterable[Endpoint], identity_of: IdentityOf
) -> endpoint_pb2.ClusterLoadAssignment:
    """Ready endpoints only: a pod that turns not-ready leaves EDS, so it gets no new
    requests while those in flight finish on the connections Envoy drains."""
    lb_endpoints = [
        endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(address=socket_address(ep.ip, ep.port)),
            metadata=endpoint_metadata(ep, identity_of(ep)),
        )
        for ep in sorted(endpoints, key=lambda e: (e.ip, e.port, e.pod))
        if ep.ready
    ]
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    if lb_endpoints:
        cla.endpoints.append(endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=lb_endpoints))
    return cla
