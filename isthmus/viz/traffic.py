"""What a sidecar counted per flow of traffic, read from its stats page. Pure.

A flow is what one stat prefix of the sidecar's config measures (`isthmus.xds.translate.naming`):

- inbound, per app port: requests and connections from peer sidecars (`inbound|<port>`),
  and apart from them those from clients outside the mesh (`inbound|<port>|unmeshed`);
  connections to ports nobody declared (`inbound-passthrough`) are port 0.
  This is the server's view: request time runs from the request reaching this
  sidecar to its response leaving it, so it includes the app but not the network.
- outbound, per service port: what this pod's app sent to that service
  (`outbound|<port>|<service>|<namespace>`). The client's view: request time runs
  from the app's request reaching its sidecar to the response going back to the
  app, so it includes the hop to the server's sidecar, mTLS and all.

HTTP flows count responses by status class and request time; every flow counts
connections and bytes. Counters are cumulative since the sidecar started; `minus`
turns two readings into what happened in between.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from isthmus.viz.latency import EMPTY, Histogram, parse_detailed
from isthmus.xds.translate import naming

Direction = Literal["inbound", "outbound"]

# Envoy's names: http.<prefix>.<stat> (connection manager), tcp.<prefix>.<stat> (TCP proxy),
# cluster.<name>.upstream_cx_active (the TCP clusters: open opaque connections).
_HTTP_STATS = r"downstream_(rq_[1-5]xx|rq_time|cx_total|cx_active|cx_rx_bytes_total|cx_tx_bytes_total)"
_TCP_STATS = r"downstream_(cx_total|cx_rx_bytes_total|cx_tx_bytes_total)"
_PASSTHROUGH = re.escape(naming.INBOUND_PASSTHROUGH_CLUSTER)
FILTER = (
    rf"^(http\.(inbound|outbound)\|[^.]*\.{_HTTP_STATS}"
    rf"|tcp\.((inbound|outbound)\|[^.]*|{_PASSTHROUGH})\.{_TCP_STATS}"
    rf"|cluster\.((inbound|outbound)\|[^.]*\|tcp|{_PASSTHROUGH})\.upstream_cx_active)$"
)
TRAFFIC_STATS = "/stats?" + urllib.parse.urlencode(
    {"format": "json", "usedonly": "", "histogram_buckets": "detailed", "filter": FILTER}
)
"""The admin page the golden metrics are read from: counters, gauges and request-time bins."""


class StatsFormatError(ValueError):
    """The stats page is not what Envoy serves there."""


@dataclass(frozen=True, order=True)
class FlowKey:
    """Which flow: a direction and port, and for outbound the service it was addressed to."""

    direction: Direction
    port: int
    """The app's port (inbound; 0 for ports nobody declared), or the service's port (outbound)."""
    namespace: str = ""
    """Outbound: the service's namespace."""
    service: str = ""
    """Outbound: the service."""
    unmeshed: bool = False
    """Inbound: from clients without a sidecar (plaintext)."""

    @property
    def prefix(self) -> str:
        """The stat prefix it comes from; also its name on the wire."""
        if self.direction == "outbound":
            return f"outbound|{self.port}|{self.service}|{self.namespace}"
        if self.port == 0:
            return naming.INBOUND_PASSTHROUGH_CLUSTER
        return f"inbound|{self.port}" + ("|unmeshed" if self.unmeshed else "")

    @classmethod
    def parse(cls, prefix: str) -> FlowKey | None:
        """The flow a stat prefix measures; None for prefixes that are not a flow's."""
        if prefix == naming.INBOUND_PASSTHROUGH_CLUSTER:
            return cls("inbound", 0, unmeshed=True)
        parts = prefix.split("|")
        if len(parts) < 2 or not parts[1].isdigit() or not 0 < int(parts[1]) <= 65535:
            return None
        port, rest = int(parts[1]), parts[2:]
        if parts[0] == "inbound" and rest in ([], ["unmeshed"]):
            return cls("inbound", port, unmeshed=bool(rest))
        if parts[0] == "outbound" and len(rest) == 2 and all(rest):
            return cls("outbound", port, namespace=rest[1], service=rest[0])
        return None

    @classmethod
    def of_tcp_cluster(cls, stat_name: str) -> FlowKey | None:
        """The flow whose opaque connections a TCP cluster carries (`inbound|<port>|tcp`,
        `outbound|<port>|<service>|<namespace>|tcp`, `inbound-passthrough`)."""
        if stat_name == naming.INBOUND_PASSTHROUGH_CLUSTER:
            return cls.parse(stat_name)
        prefix, _, tcp = stat_name.rpartition("|")
        return cls.parse(prefix) if tcp == "tcp" else None


@dataclass(frozen=True)
class Traffic:
    """One flow's figures: cumulative since the sidecar started, or the change over a window."""

    responses: int = 0
    """HTTP responses, any status."""
    failures: int = 0
    """HTTP responses with a 5xx status."""
    latency: Histogram = EMPTY
    """HTTP request time, milliseconds."""
    opened: int = 0
    """Connections accepted from the app (outbound) or from clients (inbound), HTTP or opaque."""
    open: int = 0
    """Connections open at the reading (a gauge: never a difference)."""
    received: int = 0
    """Bytes from the connections' client side."""
    sent: int = 0
    """Bytes to the connections' client side."""

    def plus(self, other: Traffic) -> Traffic:
        return Traffic(
            responses=self.responses + other.responses,
            failures=self.failures + other.failures,
            latency=self.latency.plus(other.latency),
            opened=self.opened + other.opened,
            open=self.open + other.open,
            received=self.received + other.received,
            sent=self.sent + other.sent,
        )

    def minus(self, earlier: Traffic) -> Traffic | None:
        """What happened since `earlier` (open connections as now); None if a counter went down."""
        counters = ("responses", "failures", "opened", "received", "sent")
        changes = {name: getattr(self, name) - getattr(earlier, name) for name in counters}
        latency = self.latency.minus(earlier.latency)
        if latency is None or any(v < 0 for v in changes.values()):
            return None
        return Traffic(latency=latency, open=self.open, **changes)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "latency"}
        out["latency"] = self.latency.as_list()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Traffic:
        counts = {f.name: int(data.get(f.name, 0)) for f in fields(cls) if f.name != "latency"}
        return cls(latency=Histogram.from_list(data.get("latency", [])), **counts)


Flows = Mapping[FlowKey, Traffic]


_STATUS_CLASS = re.compile(r"downstream_rq_[1-5]xx")


def _connections(stat: str, value: int) -> Traffic | None:
    """A connection stat of the connection manager (http) or the TCP proxy (tcp)."""
    match stat:
        case "downstream_cx_total":
            return Traffic(opened=value)
        case "downstream_cx_active":
            return Traffic(open=value)
        case "downstream_cx_rx_bytes_total":
            return Traffic(received=value)
        case "downstream_cx_tx_bytes_total":
            return Traffic(sent=value)
    return None


def _split(name: str) -> tuple[str, str, str] | None:
    """(`http`|`tcp`|`cluster`, prefix, stat); prefixes and stat names have no dots."""
    kind, _, rest = name.partition(".")
    prefix, _, stat = rest.rpartition(".")
    return (kind, prefix, stat) if prefix and stat else None


def _reading(kind: str, prefix: str, stat: str, value: int) -> tuple[FlowKey, Traffic] | None:
    """One counter or gauge as a flow's figure; None for stats that are not part of one."""
    if kind == "cluster":
        key = FlowKey.of_tcp_cluster(prefix)
        return (key, Traffic(open=value)) if key and stat == "upstream_cx_active" else None
    key = FlowKey.parse(prefix) if kind in ("http", "tcp") else None
    if key is None:
        return None
    if kind == "http" and _STATUS_CLASS.fullmatch(stat):
        return key, Traffic(responses=value, failures=value if stat == "downstream_rq_5xx" else 0)
    found = _connections(stat, value)
    return (key, found) if found else None


def flows_from_stats(text: str) -> dict[FlowKey, Traffic]:
    """Every flow in the `TRAFFIC_STATS` page. Raises StatsFormatError on a body Envoy would not serve."""
    try:
        data = json.loads(text)
    except ValueError:
        raise StatsFormatError("/stats: the answer is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("stats"), list):
        raise StatsFormatError("/stats: no stats list")
    flows: dict[FlowKey, Traffic] = {}

    def add(key: FlowKey, change: Traffic) -> None:
        flows[key] = flows.get(key, Traffic()).plus(change)

    for entry in data["stats"]:
        if not isinstance(entry, dict):
            continue
        histograms = entry.get("histograms")
        if isinstance(histograms, dict):
            for hist in histograms.get("details", []):
                parts = _split(str(hist.get("name", ""))) if isinstance(hist, dict) else None
                key = FlowKey.parse(parts[1]) if parts and parts[0] == "http" else None
                if key and parts and parts[2] == "downstream_rq_time":
                    add(key, Traffic(latency=parse_detailed(hist)))
            continue
        parts = _split(str(entry.get("name", "")))
        try:
            value = int(entry.get("value", 0))
        except (TypeError, ValueError):
            continue
        if parts and (found := _reading(*parts, value)):
            add(*found)
    return flows


def changes(later: Flows, earlier: Flows) -> dict[FlowKey, Traffic]:
    """Flow by flow, what happened between two readings of one sidecar.

    A flow whose counters went down was restarted in between (its sidecar, or its
    listener): everything it counted since is new. A flow that is new has its
    whole count; one that vanished counts nothing.
    """
    out = {}
    for key, now in later.items():
        before = earlier.get(key)
        delta = now if before is None else now.minus(before)
        out[key] = now if delta is None else delta
    return out


def total(flows: Iterable[Traffic]) -> Traffic:
    out = Traffic()
    for t in flows:
        out = out.plus(t)
    return out


def flows_as_dict(flows: Flows) -> dict[str, Any]:
    return {key.prefix: t.as_dict() for key, t in sorted(flows.items())}


def flows_from_dict(data: Mapping[str, Any]) -> dict[FlowKey, Traffic]:
    out = {}
    for prefix, t in data.items():
        key = FlowKey.parse(prefix)
        if key is not None:
            out[key] = Traffic.from_dict(t)
    return out
