"""The control plane's step from a platform state to the snapshot cache."""

from __future__ import annotations

from dataclasses import replace

from isthmus.controlplane.main import apply_state
from isthmus.model.index import ClusterState
from isthmus.model.resources import (
    ANNOTATION_INJECT,
    ClusterSettings,
    ContainerPort,
    ObjectMeta,
    Pod,
    Service,
    ServiceAddress,
    ServicePort,
)
from isthmus.xds.cache import SnapshotCache


def _pod(name: str, ip: str, annotations: tuple[tuple[str, str], ...] = ()) -> Pod:
    return Pod(
        name, "default", "west", ip, (("app", "web"),), annotations, "default", "web", (ContainerPort(8080, "http"),)
    )


def _state(*pods: Pod) -> ClusterState:
    svc = Service(ObjectMeta("web"), (("app", "web"),), (ServicePort(80, "http", "http"),))
    return ClusterState(ClusterSettings("west"), (ServiceAddress(svc, "10.96.0.10", "west"),), pods)


def test_meshed_pods_get_snapshots_and_departed_ones_lose_them() -> None:
    cache = SnapshotCache()
    a, b = _pod("a", "10.16.1.1"), _pod("b", "10.16.1.2")
    outsider = _pod("c", "10.16.1.3", ((ANNOTATION_INJECT, "disabled"),))
    assert apply_state(cache, _state(a, b, outsider)) == (2, 0)
    assert cache.node_ids() == {"west/default/a", "west/default/b"}
    assert apply_state(cache, _state(a, b, outsider)) == (0, 0)  # same state: nothing to push
    assert apply_state(cache, _state(a)) == (1, 1)  # b gone: a's endpoints change, b's snapshot goes
    assert cache.node_ids() == {"west/default/a"}


def test_readiness_change_reaches_every_sidecar() -> None:
    cache = SnapshotCache()
    a, b = _pod("a", "10.16.1.1"), _pod("b", "10.16.1.2")
    apply_state(cache, _state(a, b))
    changed, _ = apply_state(cache, _state(a, replace(b, ready=False)))
    assert changed == 2
