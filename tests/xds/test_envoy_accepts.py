"""The real Envoy accepts the sidecar config we build (and rejects a broken one)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2

from isthmus.model.index import ClusterState
from isthmus.model.mesh import node_id
from isthmus.model.resources import ANNOTATION_INBOUND_POLICY, ContainerPort, Pod
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.xds.translate import build_sidecar
from tests.xds.certs import TestMesh, write_identity
from tests.xds.envoy_config import find_envoy, validate, with_snapshot
from tests.xds.fixtures import (
    CLIENT,
    REDIS_1,
    WEB_1,
    WEB_CLUSTER,
    basic_state,
    pod,
    service,
    state,
)

ENVOY = find_envoy()
pytestmark = [pytest.mark.envoy, pytest.mark.skipif(ENVOY is None, reason="no envoy binary")]

LEGACY = pod("web-9", "10.0.0.99", "web", [ContainerPort(8080, "http")], injected=False)
ODD = pod("odd", "10.0.0.50", "odd", [8080, 8081, 8082, 9000, 4191], opaque="8081-8082")
STRICT = Pod(**{**vars(ODD), "annotations": (*ODD.annotations, (ANNOTATION_INBOUND_POLICY, "all-authenticated"))})
OTHER_SA = Pod(**{**vars(WEB_1), "name": "web-7", "ip": "10.0.0.7", "service_account": "web-canary"})
SCENARIOS: list[tuple[ClusterState, Pod]] = [
    (basic_state(), CLIENT),
    (basic_state(), WEB_1),
    (basic_state(), REDIS_1),
    (basic_state(LEGACY, OTHER_SA), CLIENT),
    (state(STRICT), STRICT),
    (state(CLIENT), CLIENT),
    (
        state(
            service("a", "10.96.0.1", [(80, 8080), (8081, 8081)], app="odd"),
            service("b", "10.96.0.1", [(80, 8080)], app="odd"),
            service("c", "fd00::1", [(80, 8080), (53, 53, "UDP")], app="odd"),
            service("headless", "None", [(80, 8080)], app="odd"),
            service("d", "10.96.0.2", [(8081, 9000), (8082, 9000)], namespace="other"),
            ODD,
        ),
        ODD,
    ),
]
SCENARIO_IDS = [
    "client",
    "http-server",
    "opaque-server",
    "mixed-meshing-and-identities",
    "all-authenticated",
    "empty-cluster",
    "port-oddities",
]


@pytest.fixture(scope="module")
def identity_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SDS files as the agent writes them: Envoy refuses config that names a missing one."""
    mesh = TestMesh()
    return str(write_identity(tmp_path_factory.mktemp("identity"), mesh, mesh.workload("default", "web")))


def _bootstrap(p: Pod) -> dict[str, object]:
    return render_bootstrap(
        node_id(p.cluster, p.namespace, p.name),
        p.deployment,
        p.ip,
        "/run/isthmus/ads.sock",
        {"pod": p.name, "namespace": p.namespace, "cluster": p.cluster, "service_account": p.service_account},
    )


def test_envoy_accepts_the_bootstrap(tmp_path: Path) -> None:
    assert ENVOY is not None
    ok, output = validate(ENVOY, _bootstrap(CLIENT), tmp_path)
    assert ok, output


@pytest.mark.parametrize("inline", [pytest.param(False, id="as-served"), pytest.param(True, id="rds-eds-inline")])
@pytest.mark.parametrize(("cluster_state", "proxy"), SCENARIOS, ids=SCENARIO_IDS)
def test_envoy_accepts_the_sidecar_config(
    cluster_state: ClusterState, proxy: Pod, inline: bool, identity_dir: str, tmp_path: Path
) -> None:
    assert ENVOY is not None
    config = with_snapshot(_bootstrap(proxy), build_sidecar(cluster_state, proxy, identity_dir), inline)
    ok, output = validate(ENVOY, config, tmp_path)
    assert ok, output


def _duplicate_a_chain(config: bootstrap_pb2.Bootstrap) -> None:
    (outbound,) = [lst for lst in config.static_resources.listeners if lst.name == "outbound"]
    original = outbound.filter_chains[-1]
    copy = outbound.filter_chains.add()
    copy.CopyFrom(original)
    copy.name = "copy"


def _drop_a_routed_cluster(config: bootstrap_pb2.Bootstrap) -> None:
    kept = [c for c in config.static_resources.clusters if c.name != WEB_CLUSTER]
    del config.static_resources.clusters[:]
    config.static_resources.clusters.extend(kept)


@pytest.mark.parametrize(
    ("breakage", "complaint"),
    [
        pytest.param(_duplicate_a_chain, "has the same matching rules", id="duplicate-filter-chain-match"),
        pytest.param(_drop_a_routed_cluster, f"unknown cluster '{WEB_CLUSTER}'", id="route-to-missing-cluster"),
    ],
)
def test_envoy_rejects_a_broken_config(
    breakage: Callable[[bootstrap_pb2.Bootstrap], None], complaint: str, identity_dir: str, tmp_path: Path
) -> None:
    # Proves the acceptance test above can fail, and on the mistakes it is meant to catch.
    assert ENVOY is not None
    config = with_snapshot(_bootstrap(CLIENT), build_sidecar(basic_state(), CLIENT, identity_dir), inline=True)
    breakage(config)
    ok, output = validate(ENVOY, config, tmp_path)
    assert not ok
    assert complaint in output
