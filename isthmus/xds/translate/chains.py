"""Listener plumbing both directions share: protocol detection, filter chains, the HCM.

A sidecar listener sees every intercepted connection. `original_dst` restores
where it was going; `tls_inspector` (inbound) reads a TLS ClientHello's ALPN, which
says what a peer sidecar's mTLS connection carries; `http_inspector` peeks at the
first bytes of plaintext so HTTP gets a chain with L7 routing and everything else
a TCP chain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as components
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.v3 import range_pb2
from google.protobuf import wrappers_pb2

from isthmus.model.mesh import INBOUND_PORT, OUTBOUND_PORT
from isthmus.xds.translate.fragments import DISABLED, ads, millis, pack, socket_address

# What http_inspector reports. HTTP/1.0 is left to the TCP chain: the HCM would
# answer it with 426 unless told to accept it, and TCP proxying keeps it working.
HTTP_PROTOCOLS = ("http/1.1", "h2c")
# What a listener filter reports as the transport protocol of a connection.
TLS = "tls"
PLAINTEXT = "raw_buffer"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"


def port_ranges(ports: Iterable[int]) -> list[range_pb2.Int32Range]:
    """Sorted ports as as few [start, end) ranges as possible."""
    out: list[range_pb2.Int32Range] = []
    for port in sorted(set(ports)):
        if out and out[-1].end == port:
            out[-1].end = port + 1
        else:
            out.append(range_pb2.Int32Range(start=port, end=port + 1))
    return out


def _not_on_ports(ports: Iterable[int]) -> components.ListenerFilterChainMatchPredicate:
    predicate = components.ListenerFilterChainMatchPredicate
    ranges = [predicate(destination_port_range=r) for r in port_ranges(ports)]
    on_ports = ranges[0] if len(ranges) == 1 else predicate(or_match=predicate.MatchSet(rules=ranges))
    return predicate(not_match=on_ports)


def listener_filters(http_ports: Iterable[int], tls_ports: Iterable[int] = ()) -> list[components.ListenerFilter]:
    """original_dst always; tls_inspector and http_inspector only where a chain needs them.

    Inspecting other ports would only delay server-speaks-first protocols (MySQL,
    SMTP) by the detect timeout, so each inspector is disabled everywhere else.
    tls_inspector goes first: http_inspector leaves a connection alone once it is
    known to be TLS.
    """
    filters = [
        components.ListenerFilter(
            name="envoy.filters.listener.original_dst", typed_config=pack(original_dst_pb2.OriginalDst())
        )
    ]
    inspectors = (
        ("envoy.filters.listener.tls_inspector", tls_inspector_pb2.TlsInspector(), tls_ports),
        ("envoy.filters.listener.http_inspector", http_inspector_pb2.HttpInspector(), http_ports),
    )
    for name, config, on in inspectors:
        ports = sorted(set(on))
        if ports:
            filters.append(
                components.ListenerFilter(name=name, typed_config=pack(config), filter_disabled=_not_on_ports(ports))
            )
    return filters


def chain_match(port: int, prefix: str | None, http: bool, transport: str = "") -> components.FilterChainMatch:
    """prefix: "ip/len" of a service VIP, or None for any destination address.
    transport: TLS, PLAINTEXT, or "" for either."""
    match = components.FilterChainMatch(destination_port=wrappers_pb2.UInt32Value(value=port))
    if prefix is not None:
        ip, _, length = prefix.partition("/")
        match.prefix_ranges.append(
            address_pb2.CidrRange(address_prefix=ip, prefix_len=wrappers_pb2.UInt32Value(value=int(length)))
        )
    match.transport_protocol = transport
    if http:
        match.application_protocols.extend(HTTP_PROTOCOLS)
    return match


def tls_match(port: int, alpn: Sequence[str]) -> components.FilterChainMatch:
    """TLS to `port` that offers one of `alpn` (any ALPN, or none, when empty)."""
    match = chain_match(port, None, False, TLS)
    match.application_protocols.extend(alpn)
    return match


def http_chain(
    name: str,
    match: components.FilterChainMatch,
    stat_prefix: str,
    route: str,
    mtls: base_pb2.TransportSocket | None = None,
) -> components.FilterChain:
    """mtls: terminate a peer sidecar's mTLS here; the route then sees the peer's verified identity."""
    manager = hcm.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm.HttpConnectionManager.AUTO,
        rds=hcm.Rds(config_source=ads(), route_config_name=route),
        http_filters=[
            hcm.HttpFilter(
                name="envoy.filters.http.router",
                # The app sees its peer's headers, not ours (no x-envoy-upstream-service-time).
                typed_config=pack(router_pb2.Router(suppress_envoy_headers=True)),
            )
        ],
        # A quiet gRPC stream (a watch) may idle for hours; the default 5 minutes would cut it.
        stream_idle_timeout=DISABLED,
        # Keep the app's own Server header instead of "envoy".
        server_header_transformation=hcm.HttpConnectionManager.PASS_THROUGH,
        upgrade_configs=[hcm.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
    )
    # Accept WebSockets that a peer sidecar carried over HTTP/2 as extended CONNECT.
    manager.http2_protocol_options.allow_connect = True
    if mtls is not None:
        # x-forwarded-client-cert for apps that want more than the identity header:
        # replaced with the verified peer's, never passed on from the client.
        manager.forward_client_cert_details = hcm.HttpConnectionManager.SANITIZE_SET
        manager.set_current_client_cert_details.uri = True
    chain = components.FilterChain(
        name=name,
        filter_chain_match=match,
        filters=[components.Filter(name=HCM_FILTER, typed_config=pack(manager))],
    )
    if mtls is not None:
        chain.transport_socket.CopyFrom(mtls)
    return chain


def tcp_chain(
    name: str,
    match: components.FilterChainMatch | None,
    stat_prefix: str,
    cluster: str,
    mtls: base_pb2.TransportSocket | None = None,
) -> components.FilterChain:
    proxy = tcp_proxy_pb2.TcpProxy(
        stat_prefix=stat_prefix,
        cluster=cluster,
        # Connection pools hold idle connections for hours; without a mesh nothing
        # would cut them, so the sidecar does not either (Envoy's default is 1 h).
        idle_timeout=DISABLED,
    )
    chain = components.FilterChain(
        name=name, filters=[components.Filter(name=TCP_PROXY_FILTER, typed_config=pack(proxy))]
    )
    if match is not None:
        chain.filter_chain_match.CopyFrom(match)
    if mtls is not None:
        chain.transport_socket.CopyFrom(mtls)
    return chain


def refusing_chain(name: str, match: components.FilterChainMatch | None = None) -> components.FilterChain:
    """A chain without filters: Envoy closes the connection as soon as it is accepted."""
    chain = components.FilterChain(name=name)
    if match is not None:
        chain.filter_chain_match.CopyFrom(match)
    return chain


def loop_guards() -> list[components.FilterChain]:
    """Connections addressed to the sidecar's own ports are closed, not proxied.

    Such a connection was not redirected (original_dst finds nothing to restore), so
    passthrough would connect back to this listener, and again, until fds run out.
    """
    return [
        refusing_chain(f"loop-guard|{port}", chain_match(port, None, False)) for port in (OUTBOUND_PORT, INBOUND_PORT)
    ]


def sidecar_listener(
    name: str,
    port: int,
    direction: int,
    chains: Sequence[components.FilterChain],
    default_chain: components.FilterChain,
    filters: Sequence[components.ListenerFilter],
    detect_timeout_ms: int,
) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name,
        address=socket_address("0.0.0.0", port),
        traffic_direction=direction,
        listener_filters=list(filters),
        # Server-speaks-first protocols send nothing to inspect; after this bounded
        # wait the connection goes on without a detected protocol (the TCP chain).
        listener_filters_timeout=millis(detect_timeout_ms),
        continue_on_listener_filters_timeout=True,
        filter_chains=list(chains),
        default_filter_chain=default_chain,
    )
