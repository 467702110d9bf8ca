"""What one proxy should run: its resources by type, each type versioned by a hash of its content.

The translation stage produces `Snapshot`s; the ADS server only serves them.
Version = hash of content, so rebuilding identical config pushes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf.message import Message

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

# Order in which a proxy should receive updates so nothing references what it lacks
# (xDS "make before break": clusters and endpoints before the listeners and routes that use them).
TYPE_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)


def content_version(resources: Mapping[str, Message]) -> str:
    h = hashlib.sha256()
    for name in sorted(resources):
        h.update(name.encode())
        h.update(b"\0")
        h.update(resources[name].SerializeToString(deterministic=True))
        h.update(b"\0")
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Snapshot:
    """All resources of one proxy: type URL -> resource name -> message."""

    resources: Mapping[str, Mapping[str, Message]] = field(default_factory=dict)

    def of_type(self, type_url: str) -> Mapping[str, Message]:
        return self.resources.get(type_url, {})

    def version(self, type_url: str) -> str:
        return content_version(self.of_type(type_url))

    def resource_version(self, type_url: str, name: str) -> str | None:
        msg = self.of_type(type_url).get(name)
        return None if msg is None else content_version({name: msg})
