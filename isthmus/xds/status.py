"""What the ADS server knows about its connected proxies, as immutable values `isthmus check` can render.

Times are seconds since the epoch (from the server's clock), so they can be shown and compared across
processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Nack:
    """A config version the proxy rejected, with the proxy's own explanation."""

    version: str
    message: str
    at: float


@dataclass(frozen=True)
class TypeStatus:
    """One resource type on one proxy stream."""

    type_url: str
    wildcard: bool
    """Listeners and clusters: the proxy gets every resource of the type, whatever it names."""
    resource_names: tuple[str, ...]
    """What the proxy subscribed to; empty for the wildcard types."""
    sent_version: str | None
    acked_version: str | None
    nack: Nack | None
    """The last rejection, until the proxy ACKs a later push."""
    last_push: float | None
    pushes: int
    nacks: int

    @property
    def short_type(self) -> str:
        return short_type(self.type_url)

    @property
    def in_sync(self) -> bool:
        """The proxy runs what it was last sent (pushed, ACKed, not rejected), or asks for nothing of the type.

        False while a push awaits its ACK, after a NACK, and while named resources the proxy asked for
        do not exist yet.
        """
        if self.nack is not None:
            return False
        if not self.wildcard and not self.resource_names:
            return True
        return self.sent_version is not None and self.acked_version == self.sent_version


@dataclass(frozen=True)
class ProxyStatus:
    """One connected ADS stream. A proxy that reconnects appears once per live stream."""

    node_id: str
    connected_since: float
    types: tuple[TypeStatus, ...]
    """In the order the server sends them (`TYPE_ORDER`), then any other requested type."""
    has_snapshot: bool
    """False while the control plane has no config for this node yet; its requests are held."""

    def type(self, type_url: str) -> TypeStatus | None:
        return next((t for t in self.types if t.type_url == type_url), None)

    @property
    def in_sync(self) -> bool:
        return self.has_snapshot and bool(self.types) and all(t.in_sync for t in self.types)

    @property
    def nacks(self) -> tuple[TypeStatus, ...]:
        return tuple(t for t in self.types if t.nack is not None)


@dataclass(frozen=True)
class AdsStatus:
    """Every connected proxy, plus counters that survive disconnects (for metrics)."""

    proxies: tuple[ProxyStatus, ...]
    pushes_total: Mapping[str, int]
    """Responses sent since the server started, by type URL."""
    nacks_total: Mapping[str, int]
    """Rejections received since the server started, by type URL."""

    def proxy(self, node_id: str) -> ProxyStatus | None:
        """The most recently connected stream of that node, if any."""
        matches = [p for p in self.proxies if p.node_id == node_id]
        return max(matches, key=lambda p: p.connected_since) if matches else None


def short_type(type_url: str) -> str:
    """`type.googleapis.com/envoy.config.listener.v3.Listener` -> `Listener`, for log lines and tables."""
    return type_url.rsplit(".", 1)[-1]
