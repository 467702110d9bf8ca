"""The local platform's sidecars, for a collector that runs inside the mesh's namespaces (the control plane).

The platform API lists the pods with their network namespaces; a pod's admin API
answers on that pod's loopback only, so each read runs in a thread that enters the
pod's namespace to connect (`admin_worker.fetch`), many pods in parallel. The CLI,
outside the mesh, reads sidecars through `admin_local` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from isthmus.platform.local import rpc
from isthmus.viz.admin import AdminReply, PodRef
from isthmus.viz.admin_local import POD_TIMEOUT
from isthmus.viz.admin_worker import PARALLEL, fetch
from isthmus.viz.collector import FleetError, Sidecar

LIST_TIMEOUT = 10.0


class LocalFleet:
    """One cluster's sidecars on the local platform, as its control plane sees them."""

    def __init__(self, api_socket: Path, cluster: str, pod_timeout: float = POD_TIMEOUT) -> None:
        self.api_socket = api_socket
        self.cluster = cluster
        self.pod_timeout = pod_timeout
        self._netns: dict[PodRef, str] = {}

    def sidecars(self) -> Sequence[Sidecar]:
        request = {"op": "get", "kind": "pods", "cluster": self.cluster}
        try:
            resp = rpc.call(self.api_socket, request, timeout=LIST_TIMEOUT)
        except (OSError, rpc.RpcError, ValueError) as e:
            raise FleetError(f"the platform API at {self.api_socket} did not answer: {e}") from e
        if not resp.get("ok"):
            raise FleetError(f"the platform API refused to list pods: {resp.get('error')}")
        netns: dict[PodRef, str] = {}
        found = []
        for p in resp.get("items", []):
            if not (p.get("sidecar") or {}).get("running") or not p.get("netns"):
                continue
            ref = PodRef(self.cluster, str(p["namespace"]), str(p["name"]))
            netns[ref] = str(p["netns"])
            found.append(Sidecar(ref, str(p.get("deployment") or "")))
        self._netns = netns
        return found

    def scrape(self, pods: Sequence[PodRef], paths: Sequence[str]) -> dict[PodRef, AdminReply]:
        """Reads the pods listed last; any other has no sidecar to read."""
        netns = self._netns
        replies = {p: AdminReply(p, error="it has no running sidecar") for p in pods if p not in netns}
        reachable = [p for p in pods if p in netns]
        if not reachable:
            return replies
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(reachable)), thread_name_prefix="admin") as pool:
            results = pool.map(lambda p: fetch(netns[p], list(paths), self.pod_timeout), reachable)
            for pod, result in zip(reachable, results, strict=True):
                if "error" in result:
                    replies[pod] = AdminReply(pod, error=str(result["error"]))
                else:
                    replies[pod] = AdminReply(pod, {str(k): str(v) for k, v in result["bodies"].items()})
        return replies
