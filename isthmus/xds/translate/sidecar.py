"""The whole config of a pod's sidecar: outbound and inbound, as one Snapshot."""

from __future__ import annotations

from isthmus.model.index import ClusterState
from isthmus.model.mesh import node_id
from isthmus.model.resources import Pod
from isthmus.xds.snapshot import Snapshot
from isthmus.xds.translate.fragments import Resources
from isthmus.xds.translate.inbound import build_inbound
from isthmus.xds.translate.outbound import build_outbound


def build_sidecar(state: ClusterState, pod: Pod) -> Snapshot:
    """Listeners, clusters, routes and endpoints for `pod`'s sidecar.

    Pure: the same state and pod give byte-identical resources, so versions
    (content hashes) change only where the config does. Raises ValueError for a
    pod without a sidecar (`Pod.injected` False): nothing should ask for its config.
    """
    if not pod.injected:
        raise ValueError(f"pod {pod.namespace}/{pod.name} has no sidecar (injection disabled); it gets no proxy config")
    return _snapshot(build_outbound(state), build_inbound(state, pod))


def build_sidecars(state: ClusterState) -> dict[str, Snapshot]:
    """Every injected pod's snapshot, keyed by node id (`isthmus.model.mesh.node_id`).

    The outbound half is the same for every pod, so it is built once; the
    snapshots share those messages, which is why nobody may mutate a resource.
    """
    outbound = build_outbound(state)
    return {
        node_id(p.cluster, p.namespace, p.name): _snapshot(outbound, build_inbound(state, p))
        for p in sorted(state.pods, key=lambda p: (p.namespace, p.name))
        if p.injected
    }


def _snapshot(*parts: Resources) -> Snapshot:
    merged = Resources()
    for part in parts:
        merged.extend(part)
    return Snapshot(resources=merged.by_type())
