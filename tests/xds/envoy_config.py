"""Putting a sidecar's Snapshot into a bootstrap Envoy can check without a control plane.

`envoy --mode validate` loads a config fully (every proto, every extension,
listener and cluster consistency) without binding ports or connecting anywhere,
but it never fetches xDS. So the snapshot's listeners and clusters go into
static_resources: once as served (RDS/EDS over ADS), and once with RDS replaced
by the same route configs inline and EDS by the same load assignments, which
makes Envoy check the routes and endpoints too (and that every route's cluster exists).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.bootstrap.internal_listener.v3 import internal_listener_pb2  # noqa: F401 - the same
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401 - registers the type for ParseDict
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401 - the same
from google.protobuf import json_format

from isthmus.proxy.envoy_binary import envoy_path
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot


def find_envoy() -> str:
    """The one lookup the product uses; a missing Envoy fails the tests instead of skipping them."""
    return envoy_path()


def bootstrap_proto(bootstrap: dict[str, Any]) -> bootstrap_pb2.Bootstrap:
    """Parsing against the schema already catches misspelt fields and wrong types."""
    return json_format.ParseDict(bootstrap, bootstrap_pb2.Bootstrap())


def with_snapshot(bootstrap: dict[str, Any], snap: Snapshot, inline: bool) -> bootstrap_pb2.Bootstrap:
    config = bootstrap_proto(bootstrap)
    routes = {n: m for n, m in snap.of_type(ROUTE).items() if isinstance(m, route_pb2.RouteConfiguration)}
    assignments = {n: m for n, m in snap.of_type(ENDPOINT).items() if isinstance(m, endpoint_pb2.ClusterLoadAssignment)}
    for msg in snap.of_type(LISTENER).values():
        assert isinstance(msg, listener_pb2.Listener)
        lst = config.static_resources.listeners.add()
        lst.CopyFrom(msg)
        if inline:
            _inline_routes(lst, routes)
    for msg in snap.of_type(CLUSTER).values():
        assert isinstance(msg, cluster_pb2.Cluster)
        cluster = config.static_resources.clusters.add()
        cluster.CopyFrom(msg)
        if inline and cluster.type == cluster_pb2.Cluster.EDS:
            cluster.type = cluster_pb2.Cluster.STATIC
            assignment = cluster.eds_cluster_config.service_name or cluster.name
            cluster.ClearField("eds_cluster_config")
            cluster.load_assignment.CopyFrom(assignments[assignment])
    return config


def _inline_routes(lst: listener_pb2.Listener, routes: dict[str, route_pb2.RouteConfiguration]) -> None:
    chains = [*lst.filter_chains, lst.default_filter_chain]
    for chain in chains:
        for f in chain.filters:
            manager = hcm.HttpConnectionManager()
            if not f.typed_config.Unpack(manager) or not manager.HasField("rds"):
                continue
            manager.route_config.CopyFrom(routes[manager.rds.route_config_name])
            manager.ClearField("rds")
            f.typed_config.Pack(manager)


def validate(envoy: str, config: bootstrap_pb2.Bootstrap | dict[str, Any], workdir: Path) -> tuple[bool, str]:
    """(accepted, Envoy's output). Written as JSON so a failing test leaves a readable file."""
    as_dict = json_format.MessageToDict(config) if isinstance(config, bootstrap_pb2.Bootstrap) else config
    path = workdir / "envoy.json"
    path.write_text(json.dumps(as_dict, indent=1))
    proc = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode == 0, proc.stdout + proc.stderr
