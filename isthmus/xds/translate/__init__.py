"""Translation: model -> the Envoy resources of one proxy. Pure functions, no I/O.

Part of the xds stage; may import isthmus.model and isthmus.xds.snapshot only.
Resource names are in `naming`, so the ADS server, viz and tests agree on them.
"""

from isthmus.model.index import ClusterState
from isthmus.model.mesh import IDENTITY_DIR, is_gateway
from isthmus.model.resources import Pod
from isthmus.xds.snapshot import Snapshot
from isthmus.xds.translate import sidecar
from isthmus.xds.translate.gateway import build_gateway, build_gateways


def build_sidecar(state: ClusterState, pod: Pod, identity_dir: str = IDENTITY_DIR) -> Snapshot:
    """The config of `pod`'s proxy: a multi-cluster gateway's, or a sidecar's."""
    if is_gateway(pod.namespace, pod.annotations):
        return build_gateway(state, pod, identity_dir)
    return sidecar.build_sidecar(state, pod, identity_dir)


def build_sidecars(state: ClusterState, identity_dir: str = IDENTITY_DIR) -> dict[str, Snapshot]:
    """Every proxy's snapshot, keyed by node id: sidecars, with gateways' own config in their place."""
    return {**sidecar.build_sidecars(state, identity_dir), **build_gateways(state, identity_dir)}


__all__ = ["build_gateway", "build_gateways", "build_sidecar", "build_sidecars"]
