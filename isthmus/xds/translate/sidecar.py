"""The whole config of a pod's sidecar: outbound and inbound, as one Snapshot."""

from __future__ import annotations

from isthmus.model.index import ClusterState
from isthmus.model.mesh import IDENTITY_DIR, node_id
from isthmus.model.resources import Pod
from isthmus.xds.snapshot import Snapshot
from isthmus.xds.translate import tracing
from isthmus.xds.translate.fragments import Resources
from isthmus.xds.translate.inbound import build_inbound
from isthmus.xds.translate.outbound import build_outbound
from isthmus.xds.translate.tls import MeshTls


def build_sidecar(state: ClusterState, pod: Pod, identity_dir: str = IDENTITY_DIR) -> Snapshot:
    """Listeners, clusters, routes and endpoints for `pod`'s sidecar.

    Pure: the same state and pod give byte-identical resources, so versions
    (content hashes) change only where the config does. Raises ValueError for a
    pod without a sidecar (`Pod.injected` False): nothing should ask for its config.
    identity_dir: where the sidecar's Envoy finds its SDS files; pods always use
    IDENTITY_DIR, tests that run Envoy outside a pod point it elsewhere.
    """
    if not pod.injected:
        raise ValueError(f"pod {pod.namespace}/{pod.name} has no sidecar (injection disabled); it gets no proxy config")
    mesh = _mesh(state, identity_dir)
    outbound, inbound = build_outbound(state, mesh), build_inbound(state, pod, mesh)
    return _snapshot(tracing.traced(state, outbound), tracing.traced(state, inbound), tracing.collector(state))


def build_sidecars(state: ClusterState, identity_dir: str = IDENTITY_DIR) -> dict[str, Snapshot]:
    """Every injected pod's snapshot, keyed by node id (`isthmus.model.mesh.node_id`).

    The outbound half is the same for every pod, so it is built once; the
    snapshots share those messages, which is why nobody may mutate a resource.
    """
    mesh = _mesh(state, identity_dir)
    outbound = tracing.traced(state, build_outbound(state, mesh))
    trace_sink = tracing.collector(state)
    return {
        node_id(p.cluster, p.namespace, p.name): _snapshot(
            outbound, tracing.traced(state, build_inbound(state, p, mesh)), trace_sink
        )
        for p in sorted(state.pods, key=lambda p: (p.namespace, p.name))
        if p.injected
    }


def _mesh(state: ClusterState, identity_dir: str) -> MeshTls:
    return MeshTls(identity_dir=identity_dir, trust_domain=state.settings.trust_domain)


def _snapshot(*parts: Resources) -> Snapshot:
    merged = Resources()
    for part in parts:
        merged.extend(part)
    return Snapshot(resources=merged.by_type())
