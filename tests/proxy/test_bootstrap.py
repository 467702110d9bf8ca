"""The sidecar's Envoy bootstrap: identity, the way to the control plane, and what the pod IP exposes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401 - registers the type for ParseDict
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401 - the same
from google.protobuf import json_format

from isthmus.model.mesh import ADMIN_PORT, XDS_CLUSTER, node_id
from isthmus.proxy.bootstrap import ADMIN_CLUSTER, render_bootstrap
from isthmus.proxy.envoy_binary import envoy_path

NODE = node_id("west", "default", "web-1")
POD_IP = "10.0.0.1"
SOCKET = "/run/isthmus/west/ads.sock"
META = {"pod": "web-1", "namespace": "default", "cluster": "west", "service_account": "web"}


def render(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "node_id": NODE,
        "cluster": "web",
        "pod_ip": POD_IP,
        "ads_socket_path": SOCKET,
        "metadata": META,
    }
    args.update(overrides)
    return render_bootstrap(**args)


def parsed() -> bootstrap_pb2.Bootstrap:
    # ParseDict rejects unknown fields and wrong types, so this is a schema check too.
    return json_format.ParseDict(render(), bootstrap_pb2.Bootstrap())


def test_is_plain_json() -> None:
    assert json.loads(json.dumps(render())) == render()


def test_node_carries_identity_and_metadata() -> None:
    node = parsed().node
    assert node.id == NODE
    assert node.cluster == "web"
    assert {k: v.string_value for k, v in node.metadata.fields.items()} == META


def test_admin_api_stays_on_loopback() -> None:
    addr = parsed().admin.address.socket_address
    assert (addr.address, addr.port_value) == ("127.0.0.1", ADMIN_PORT)


def test_everything_dynamic_comes_over_ads_from_a_unix_socket() -> None:
    config = parsed()
    ads = config.dynamic_resources.ads_config
    assert ads.api_type == ads.GRPC
    assert ads.transport_api_version == 2  # V3
    (grpc,) = ads.grpc_services
    assert grpc.envoy_grpc.cluster_name == XDS_CLUSTER
    assert grpc.envoy_grpc.retry_policy.retry_back_off.max_interval.ToSeconds() <= 10
    for source in (config.dynamic_resources.lds_config, config.dynamic_resources.cds_config):
        assert source.HasField("ads") and source.resource_api_version == 2
    (xds,) = [c for c in config.static_resources.clusters if c.name == XDS_CLUSTER]
    (lb,) = xds.load_assignment.endpoints[0].lb_endpoints
    assert lb.endpoint.address.pipe.path == SOCKET
    options = render()["static_resources"]["clusters"][0]["typed_extension_protocol_options"]
    assert "http2_protocol_options" in json.dumps(options)


def _metrics_routes() -> list[Any]:
    (lst,) = parsed().static_resources.listeners
    assert isinstance(lst, listener_pb2.Listener)
    addr = lst.address.socket_address
    assert (addr.address, addr.port_value) == (POD_IP, ADMIN_PORT)
    manager = hcm.HttpConnectionManager()
    assert lst.filter_chains[0].filters[0].typed_config.Unpack(manager)
    (vhost,) = manager.route_config.virtual_hosts
    return list(vhost.routes)


def _serve(method: str, path: str) -> tuple[str, str] | int:
    """What the pod-IP listener does with a request: (cluster, path sent) or a direct status."""
    bare = path.split("?", 1)[0]
    for r in _metrics_routes():
        if r.match.path and r.match.path != bare:
            continue
        if r.match.prefix and not bare.startswith(r.match.prefix):
            continue
        if any(h.name == ":method" and h.string_match.exact != method for h in r.match.headers):
            continue
        if r.HasField("direct_response"):
            return int(r.direct_response.status)
        rewritten = r.route.prefix_rewrite + path[len(bare) :] if r.route.prefix_rewrite else path
        return (r.route.cluster, rewritten)
    raise AssertionError("no route")


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        pytest.param("GET", "/ready", (ADMIN_CLUSTER, "/ready"), id="readiness"),
        pytest.param("GET", "/stats/prometheus", (ADMIN_CLUSTER, "/stats/prometheus"), id="prometheus"),
        pytest.param(
            "GET", "/stats/prometheus?usedonly", (ADMIN_CLUSTER, "/stats/prometheus?usedonly"), id="with-query"
        ),
        pytest.param("GET", "/metrics", (ADMIN_CLUSTER, "/stats/prometheus"), id="metrics-alias"),
        pytest.param("GET", "/config_dump", 404, id="config-dump-hidden"),
        pytest.param("POST", "/quitquitquit", 404, id="quit-hidden"),
        pytest.param("POST", "/ready", 404, id="only-get"),
        pytest.param("GET", "/ready/../config_dump", 404, id="no-path-tricks"),
        pytest.param("GET", "/stats", 404, id="other-stats-hidden"),
    ],
)
def test_pod_ip_exposes_only_readiness_and_metrics(method: str, path: str, expected: tuple[str, str] | int) -> None:
    assert _serve(method, path) == expected


def test_admin_cluster_points_at_the_admin_api() -> None:
    (admin,) = [c for c in parsed().static_resources.clusters if c.name == ADMIN_CLUSTER]
    addr = admin.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (addr.address, addr.port_value) == ("127.0.0.1", ADMIN_PORT)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        pytest.param({"node_id": "web-1"}, "not <cluster>/<namespace>/<pod>", id="bad-node-id"),
        pytest.param({"pod_ip": "web-1.local"}, "not an IP address", id="pod-ip-not-ip"),
        pytest.param({"pod_ip": "0.0.0.0"}, "admin API", id="pod-ip-wildcard"),
        pytest.param({"pod_ip": "127.0.0.1"}, "admin API", id="pod-ip-is-admin-address"),
        pytest.param({"ads_socket_path": "/tmp/" + "x" * 120}, "Unix socket limit", id="socket-path-too-long"),
        pytest.param({"ads_socket_path": ""}, "Unix socket limit", id="socket-path-empty"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(override: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(**override)


def _envoy() -> str:
    return envoy_path()


@pytest.mark.envoy
@pytest.mark.skipif(_envoy() is None, reason="no envoy binary")
def test_envoy_accepts_the_bootstrap(tmp_path: Path) -> None:
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(render()))
    envoy = _envoy()
    assert envoy is not None
    proc = subprocess.run([envoy, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
