"""Small pieces of Envoy config that the listener, route and cluster builders share."""

from __future__ import annotations

from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE


@dataclass
class Resources:
    """What one builder produced; `sidecar` merges these into a Snapshot."""

    listeners: list[listener_pb2.Listener] = field(default_factory=list)
    clusters: list[cluster_pb2.Cluster] = field(default_factory=list)
    routes: list[route_pb2.RouteConfiguration] = field(default_factory=list)
    endpoints: list[endpoint_pb2.ClusterLoadAssignment] = field(default_factory=list)

    def by_type(self) -> dict[str, dict[str, Message]]:
        """Type URL -> name -> resource, names sorted so iteration order is deterministic too."""
        named: list[tuple[str, list[tuple[str, Message]]]] = [
            (LISTENER, [(m.name, m) for m in self.listeners]),
            (CLUSTER, [(m.name, m) for m in self.clusters]),
            (ROUTE, [(m.name, m) for m in self.routes]),
            (ENDPOINT, [(m.cluster_name, m) for m in self.endpoints]),
        ]
        return {type_url: _unique(type_url, items) for type_url, items in named}

    def extend(self, other: Resources) -> None:
        self.listeners += other.listeners
        self.clusters += other.clusters
        self.routes += other.routes
        self.endpoints += other.endpoints


def _unique(type_url: str, items: list[tuple[str, Message]]) -> dict[str, Message]:
    out: dict[str, Message] = {}
    for name, msg in items:
        # Two builders claiming one name with different content would silently drop
        # config; that is a bug in this package, never bad input.
        if name in out and out[name] != msg:
            raise AssertionError(f"two different {type_url.rsplit('.', 1)[-1]} resources named {name!r}")
        out[name] = msg
    return {name: out[name] for name in sorted(out)}


def pack(msg: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg)
    return out


def ads() -> config_source_pb2.ConfigSource:
    """Fetch over the same ADS stream as everything else, so updates stay ordered."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def millis(ms: int) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromMilliseconds(ms)
    return out


# Envoy reads a zero duration as "no timeout" wherever this is used.
DISABLED = duration_pb2.Duration(seconds=0)


def socket_address(ip: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=ip, port_value=port))
