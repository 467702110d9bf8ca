"""Hand-written Envoy configs for the comparisons: a static backend and a minimal sidecar pair.

The backend answers every request itself (direct_response), so the path in front
of it, not a Python app, is what the numbers show. The pair is the floor any
Envoy-based mesh can reach: listener -> HTTP/2 -> listener -> backend, nothing else.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.certs import Leaf, PairCerts

ENVOY = str(Path(sys.executable).parent / "envoy")
_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
_DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
BACKEND_BODY = "hello from the benchmark backend\n"
BACKEND_STAT = "http.backend.downstream_rq_2xx"


def _addr(ip: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": ip, "port_value": port}}


def _listener(name: str, ip: str, port: int, route: dict[str, Any]) -> dict[str, Any]:
    hcm = {
        "@type": _HCM,
        "stat_prefix": name,
        "codec_type": "AUTO",
        "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": [route]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}}],
    }
    return {
        "name": name,
        "address": _addr(ip, port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
        ],
    }


def _cluster(name: str, port: int, http2: bool) -> dict[str, Any]:
    proto = {"http2_protocol_options": {}} if http2 else {"http_protocol_options": {}}
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr("127.0.0.1", port)}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_OPTIONS,
                "explicit_http_config": proto,
            }
        },
    }


def backend_config(bind: str, port: int, admin_port: int) -> dict[str, Any]:
    route = {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": BACKEND_BODY}}}
    return {
        "admin": {"address": _addr("127.0.0.1", admin_port)},
        "static_resources": {"listeners": [_listener("backend", bind, port, route)]},
    }


def _tls_common(me: Leaf, ca_pem: str, peer_san: dict[str, str]) -> dict[str, Any]:
    """TLS 1.3, our certificate, and a peer that chains to the CA with a matching URI SAN (as the mesh does)."""
    return {
        "tls_params": {"tls_minimum_protocol_version": "TLSv1_3", "tls_maximum_protocol_version": "TLSv1_3"},
        "tls_certificates": [
            {"certificate_chain": {"inline_string": me.cert_pem}, "private_key": {"inline_string": me.key_pem}}
        ],
        "validation_context": {
            "trusted_ca": {"inline_string": ca_pem},
            "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": peer_san}],
        },
        "alpn_protocols": ["h2"],
    }


def pair_configs(
    a_port: int, b_port: int, backend_port: int, tls: PairCerts | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Envoy A (the client's sidecar) and Envoy B (the server's), HTTP/2 between them; mTLS if `tls`."""
    to_b = _cluster("b", b_port, http2=True)
    from_a = _listener("b", "127.0.0.1", b_port, {"match": {"prefix": "/"}, "route": {"cluster": "app"}})
    if tls is not None:
        to_b["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": _UPSTREAM_TLS,
                "common_tls_context": _tls_common(tls.client, tls.ca_pem, {"exact": tls.server.spiffe_id}),
                "sni": "b",
            },
        }
        from_a["filter_chains"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": _DOWNSTREAM_TLS,
                "common_tls_context": _tls_common(tls.server, tls.ca_pem, {"prefix": "spiffe://"}),
                "require_client_certificate": True,
            },
        }
    a = {
        "static_resources": {
            "listeners": [_listener("a", "127.0.0.1", a_port, {"match": {"prefix": "/"}, "route": {"cluster": "b"}})],
            "clusters": [to_b],
        }
    }
    b = {"static_resources": {"listeners": [from_a], "clusters": [_cluster("app", backend_port, http2=False)]}}
    return a, b


def envoy_argv(config: Path) -> list[str]:
    return [ENVOY, "-c", str(config), "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn"]


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=1))
    return path


def free_ports(n: int) -> list[int]:
    """Ports the kernel hands out now on loopback (the host is shared: never hard-code one)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def http_get(url: str, timeout: float = 2.0, host: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode(errors="replace")


def wait_ok(url: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            status, body = http_get(url)
            if status == 200:
                return body
            last = f"status {status}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise TimeoutError(f"{url} not answering 200 after {timeout:.0f}s ({last})")


def parse_counter(stats_text: str, name: str) -> int:
    for line in stats_text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0
