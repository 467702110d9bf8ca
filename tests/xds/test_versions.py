"""Versions are content hashes: identical state pushes nothing, a change touches only what it changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from isthmus.model.index import ClusterState
from isthmus.model.resources import ContainerPort, Pod
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from isthmus.xds.translate import build_sidecar, build_sidecars
from tests.xds.fixtures import (
    CLIENT,
    REDIS,
    REDIS_1,
    REDIS_CLUSTER,
    WEB,
    WEB_1,
    WEB_2,
    WEB_CLUSTER,
    basic_state,
    pod,
    state,
)

TYPES = (LISTENER, CLUSTER, ROUTE, ENDPOINT)


def test_same_state_gives_same_versions_whatever_the_input_order() -> None:
    a = build_sidecar(basic_state(), CLIENT)
    b = build_sidecar(state(CLIENT, REDIS_1, WEB_2, WEB_1, REDIS, WEB), CLIENT)
    for t in TYPES:
        assert a.version(t) == b.version(t)
        assert list(a.of_type(t)) == list(b.of_type(t))


def _with_pod(s: ClusterState, replaced: str, new: Pod | None) -> ClusterState:
    pods = tuple(p for p in s.pods if p.name != replaced)
    return dataclasses.replace(s, pods=(*pods, new) if new is not None else pods)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: _with_pod(s, "web-2", dataclasses.replace(WEB_2, ready=False)), id="replica-not-ready"),
        pytest.param(lambda s: _with_pod(s, "web-2", None), id="replica-gone"),
        pytest.param(
            lambda s: _with_pod(s, "web-3", pod("web-3", "10.0.0.3", "web", [ContainerPort(8080, "http")])),
            id="replica-added",
        ),
        pytest.param(lambda s: _with_pod(s, "web-2", dataclasses.replace(WEB_2, ip="10.0.0.22")), id="replica-moved"),
    ],
)
def test_endpoint_change_of_one_service_changes_only_its_assignment(
    change: Callable[[ClusterState], ClusterState],
) -> None:
    before_state = basic_state()
    before = build_sidecar(before_state, CLIENT)
    after = build_sidecar(change(before_state), CLIENT)
    assert before.resource_version(ENDPOINT, WEB_CLUSTER) != after.resource_version(ENDPOINT, WEB_CLUSTER)
    assert before.resource_version(ENDPOINT, REDIS_CLUSTER) == after.resource_version(ENDPOINT, REDIS_CLUSTER)
    for t in (LISTENER, CLUSTER, ROUTE):
        assert before.version(t) == after.version(t), t


def test_a_replica_without_sidecar_changes_the_services_cluster_protocol() -> None:
    # Mixed endpoints cannot be upgraded to HTTP/2, so CDS and RDS change too; nothing else does.
    before = build_sidecar(basic_state(), CLIENT)
    legacy = pod("web-3", "10.0.0.3", "web", [ContainerPort(8080, "http")], injected=False)
    after = build_sidecar(basic_state(legacy), CLIENT)
    assert before.resource_version(CLUSTER, WEB_CLUSTER) != after.resource_version(CLUSTER, WEB_CLUSTER)
    assert before.resource_version(ROUTE, WEB_CLUSTER) != after.resource_version(ROUTE, WEB_CLUSTER)
    assert before.resource_version(CLUSTER, REDIS_CLUSTER) == after.resource_version(CLUSTER, REDIS_CLUSTER)
    assert before.version(LISTENER) == after.version(LISTENER)


def test_proxies_differ_only_in_their_inbound_side() -> None:
    web = build_sidecar(basic_state(), WEB_1)
    client = build_sidecar(basic_state(), CLIENT)
    assert web.of_type(LISTENER)["outbound"] == client.of_type(LISTENER)["outbound"]
    assert web.of_type(ENDPOINT) == client.of_type(ENDPOINT)
    assert web.of_type(LISTENER)["inbound"] != client.of_type(LISTENER)["inbound"]


def test_a_new_service_leaves_other_services_resources_alone() -> None:
    before = build_sidecar(state(WEB, WEB_1, CLIENT), CLIENT)
    after = build_sidecar(state(WEB, WEB_1, CLIENT, REDIS, REDIS_1), CLIENT)
    for t in (CLUSTER, ROUTE, ENDPOINT):
        assert before.resource_version(t, WEB_CLUSTER) == after.resource_version(t, WEB_CLUSTER)
    assert before.version(LISTENER) != after.version(LISTENER)


def test_building_every_sidecar_at_once_gives_the_same_snapshots() -> None:
    legacy = pod("legacy", "10.0.0.8", "legacy", injected=False)
    s = basic_state(legacy)
    every = build_sidecars(s)
    assert set(every) == {f"west/default/{p.name}" for p in s.pods if p.injected}
    for p in s.pods:
        if p.injected:
            one = build_sidecar(s, p)
            assert {t: one.version(t) for t in TYPES} == {t: every[f"west/default/{p.name}"].version(t) for t in TYPES}
