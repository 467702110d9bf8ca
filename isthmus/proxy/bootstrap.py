"""Envoy's bootstrap for a sidecar: who it is, where its control plane is, and the
one listener it runs before any xDS arrives (probes and metrics for the outside).

Pure: returns a JSON-able dict; the agent writes it and starts Envoy.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from isthmus.model.mesh import ADMIN_PORT, XDS_CLUSTER, parse_node_id

ADMIN_CLUSTER = "isthmus-admin"
METRICS_LISTENER = "isthmus-metrics"
ADMIN_IP = "127.0.0.1"
# How often a traced sidecar sends its finished spans (it also sends at every 5th span).
TRACE_FLUSH_MS = 1000
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
MAX_UNIX_PATH = 107

# Paths the pod-IP listener lets through to the admin API, each only for GET.
# /metrics is what scrapers ask by default; it is the same Prometheus text.
EXPOSED_ADMIN_PATHS: tuple[tuple[str, str], ...] = (
    ("/ready", "/ready"),
    ("/stats/prometheus", "/stats/prometheus"),
    ("/metrics", "/stats/prometheus"),
)

_ADS: dict[str, Any] = {"ads": {}, "resource_api_version": "V3"}
_HTTP_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_INTERNAL_LISTENER_TYPE = "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"


def render_bootstrap(
    node_id: str,
    cluster: str,
    pod_ip: str,
    ads_socket_path: str,
    metadata: dict[str, str],
    probe_ips: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The bootstrap for the sidecar of the pod at `pod_ip`.

    node_id: `isthmus.model.mesh.node_id(...)`; the ADS server maps it back to the pod.
    cluster: Envoy's service cluster (node.cluster).
    ads_socket_path: Unix socket of the control plane's ADS server.
    metadata: node.metadata (pod, namespace, cluster, service account, ...).
    probe_ips: more of the pod's addresses to serve the probe and metrics paths on
    (a multi-cluster gateway's wan address, where other clusters probe it).
    Raises ValueError on input Envoy would reject later with a less clear error.
    """
    parse_node_id(node_id)
    for ip in (pod_ip, *probe_ips):
        _check_pod_ip(ip)
    if not ads_socket_path or len(ads_socket_path.encode()) > MAX_UNIX_PATH:
        raise ValueError(
            f"ADS socket path {ads_socket_path!r} must be 1..{MAX_UNIX_PATH} bytes (a Unix socket limit); "
            "use a shorter state directory"
        )
    return {
        "node": {"id": node_id, "cluster": cluster, "metadata": dict(sorted(metadata.items()))},
        # The full admin API (config dumps, /quitquitquit) stays on loopback.
        "admin": {"address": _socket_address(ADMIN_IP, ADMIN_PORT)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [
                    {
                        "envoy_grpc": {
                            "cluster_name": XDS_CLUSTER,
                            # Envoy's default backs off to 30 s; the control plane is local,
                            # so come back quickly after it restarts (jitter is Envoy's own).
                            "retry_policy": {"retry_back_off": {"base_interval": "0.5s", "max_interval": "5s"}},
                        }
                    }
                ],
            },
            "lds_config": dict(_ADS),
            "cds_config": dict(_ADS),
        },
        # Internal listeners carry a mirror's inner mTLS into the outer one towards
        # another cluster's gateway (isthmus.xds.translate.remote).
        "bootstrap_extensions": [
            {
                "name": "envoy.bootstrap.internal_listener",
                "typed_config": {"@type": _INTERNAL_LISTENER_TYPE},
            }
        ],
        "layered_runtime": {
            "layers": [
                # Traced requests reach the collector within about a second (Envoy's default is 5 s).
                {"name": "static", "static_layer": {"tracing.opentelemetry.flush_interval_ms": TRACE_FLUSH_MS}},
                # Envoy's default runtime has this layer too: /runtime_modify keeps working.
                {"name": "admin", "admin_layer": {}},
            ]
        },
        "static_resources": {
            "clusters": [_xds_cluster(ads_socket_path), _admin_cluster()],
            "listeners": [_metrics_listener(pod_ip)]
            + [_metrics_listener(ip, f"{METRICS_LISTENER}-{ip}") for ip in sorted(set(probe_ips) - {pod_ip})],
        },
    }


def _check_pod_ip(pod_ip: str) -> None:
    try:
        ip = ipaddress.ip_address(pod_ip)
    except ValueError:
        raise ValueError(f"pod IP {pod_ip!r} is not an IP address") from None
    # Admin holds 127.0.0.1:4191; the pod-IP listener may share the port but not the address.
    if ip.is_unspecified or str(ip) == ADMIN_IP:
        raise ValueError(
            f"pod IP {pod_ip!r} would take the admin API's address {ADMIN_IP}:{ADMIN_PORT}; "
            "give the pod its own address"
        )


def _socket_address(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def _static_cluster(name: str, address: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
        },
    }


def _xds_cluster(ads_socket_path: str) -> dict[str, Any]:
    cluster = _static_cluster(XDS_CLUSTER, {"pipe": {"path": ads_socket_path}})
    # gRPC needs HTTP/2. No HTTP/2 keepalive: over a Unix socket a dead control plane
    # closes the stream at once, and gRPC servers answer pings more often than every
    # 5 minutes on a quiet stream with GOAWAY (too_many_pings), i.e. reconnect churn.
    cluster["typed_extension_protocol_options"] = {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": _HTTP_OPTIONS_TYPE,
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }
    return cluster


def _admin_cluster() -> dict[str, Any]:
    # No SO_MARK needed (the pod's redirect leaves 127.0.0.0/8 alone), and none wanted:
    # setting it needs CAP_NET_ADMIN, and metrics should work even where that is missing.
    return _static_cluster(ADMIN_CLUSTER, _socket_address(ADMIN_IP, ADMIN_PORT))


def _metrics_routes() -> list[dict[str, Any]]:
    get_only = [{"name": ":method", "string_match": {"exact": "GET"}}]
    routes: list[dict[str, Any]] = [
        {
            # Exact path (query string aside), so "/ready/../config_dump" and the like never match.
            "match": {"path": path, "headers": get_only},
            "route": {"cluster": ADMIN_CLUSTER, **({"prefix_rewrite": target} if target != path else {})},
        }
        for path, target in EXPOSED_ADMIN_PATHS
    ]
    routes.append(
        {
            "match": {"prefix": "/"},
            "direct_response": {
                "status": 404,
                "body": {"inline_string": "only GET /ready, /stats/prometheus and /metrics are served here\n"},
            },
        }
    )
    return routes


def _metrics_listener(pod_ip: str, name: str = METRICS_LISTENER) -> dict[str, Any]:
    manager = {
        "@type": _HCM_TYPE,
        "stat_prefix": "isthmus-metrics",
        "codec_type": "AUTO",
        "route_config": {
            "name": METRICS_LISTENER,
            "virtual_hosts": [{"name": METRICS_LISTENER, "domains": ["*"], "routes": _metrics_routes()}],
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_TYPE}}],
    }
    return {
        "name": name,
        "address": _socket_address(pod_ip, ADMIN_PORT),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }
