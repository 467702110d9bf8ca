"""Where a link's mirrors are written: the linking cluster's own platform API.

`MirrorStore` is the edge; `PlatformMirrorStore` writes through the local
platform's apply and delete operations, marked with the link's name, so the
daemon itself refuses anything but that link's mirrors (and creates a missing
namespace without ever changing an existing one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from isthmus.model.codec import decode
from isthmus.model.index import ClusterState
from isthmus.model.manifests import dump_resource
from isthmus.model.mesh import MIRROR_CLUSTER_LABEL
from isthmus.model.resources import Namespace, ObjectMeta, Service
from isthmus.multicluster.errors import LocalWriteFailed
from isthmus.platform.local import rpc

BUILTIN_NAMESPACES = ("default",)
TIMEOUT = 10.0


class MirrorStore(Protocol):
    async def services(self) -> list[Service]:
        """Every Service of the local cluster now; raises LocalWriteFailed when that cannot be known."""
        ...

    async def write(self, puts: Sequence[Service], deletes: Sequence[Service]) -> None:
        """Put and delete the link's mirrors; raises LocalWriteFailed."""
        ...


class PlatformMirrorStore:
    def __init__(self, api_socket: Path, cluster: str, link: str) -> None:
        self.api_socket = api_socket
        self.cluster = cluster
        self.link = link

    async def services(self) -> list[Service]:
        resp = await self._call({"op": "get", "kind": "state", "cluster": self.cluster})
        state = decode(ClusterState, resp["state"])
        return [s.service for s in state.services]

    async def write(self, puts: Sequence[Service], deletes: Sequence[Service]) -> None:
        source = f"service mirror of {self.link}"
        if puts:
            namespaces = sorted({s.meta.namespace for s in puts} - set(BUILTIN_NAMESPACES))
            created = [Namespace(ObjectMeta(ns, "", labels=((MIRROR_CLUSTER_LABEL, self.link),))) for ns in namespaces]
            await self._call(
                {
                    "op": "apply",
                    "cluster": self.cluster,
                    "link": self.link,
                    "source": source,
                    "text": _listed([*created, *puts]),
                }
            )
        if deletes:
            await self._call(
                {"op": "delete", "cluster": self.cluster, "link": self.link, "source": source, "text": _listed(deletes)}
            )

    async def _call(self, req: dict[str, object]) -> dict[str, object]:
        try:
            resp = await rpc.acall(self.api_socket, req, TIMEOUT)
        except (OSError, TimeoutError, ValueError, rpc.RpcError) as e:
            raise LocalWriteFailed(self.link, f"the local platform API did not answer: {e!r}") from None
        if not resp.get("ok"):
            raise LocalWriteFailed(self.link, f"the local platform refused: {resp.get('error')}")
        return resp


def _listed(resources: Sequence[Service | Namespace]) -> str:
    # JSON is YAML: one List document, parsed by the same code as any `isthmus apply`.
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [dump_resource(r) for r in resources]})
