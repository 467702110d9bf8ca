"""Readings of every sidecar over the last minutes, and what changed over a window. Pure.

The collector reads all of a cluster's sidecars at once, every few seconds: one
`Cycle`. `History` keeps every cycle of the last `Retention.recent` seconds and,
further back, one per `Retention.spacing` seconds, up to the longest window, so
memory stays bounded (about 40 cycles) whatever the traffic. A window of W seconds
runs from the newest cycle at least W seconds older than the latest one (or the
oldest there is) to the latest; each pod's figures are the change of its counters
between its readings at those two ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from isthmus.viz.admin import PodRef
from isthmus.viz.traffic import Flows, changes, flows_as_dict, flows_from_dict

NO_FLOWS: Flows = {}


@dataclass(frozen=True)
class Reading:
    """One pod's sidecar in one cycle: its flows, or why they could not be read."""

    deployment: str
    flows: Flows | None
    error: str | None = None


@dataclass(frozen=True)
class Cycle:
    at: float
    """When its reads began (the collector's monotonic clock, seconds)."""
    readings: Mapping[PodRef, Reading]
    """Every pod that had a sidecar to read then."""


@dataclass(frozen=True)
class Retention:
    recent: float = 75.0
    """Every cycle this young is kept (windows of a minute or less see every reading)."""
    spacing: float = 30.0
    """Older cycles: one per this many seconds."""
    longest: float = 600.0
    """The longest window; cycles older than the one that starts it are dropped."""


@dataclass(frozen=True)
class PodWindow:
    """One pod's traffic over a window."""

    pod: PodRef
    deployment: str
    flows: Flows
    """Changes over the window (open connections: as last read)."""
    error: str | None = None
    """Why its sidecar could not be read in the latest cycle; its flows are then empty."""
    current: bool = True
    """It had a sidecar in the latest cycle (a pod that has gone still counts for what it did)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.pod.namespace,
            "name": self.pod.name,
            "deployment": self.deployment,
            "flows": flows_as_dict(self.flows),
            "error": self.error,
            "current": self.current,
        }

    @classmethod
    def from_dict(cls, cluster: str, data: Mapping[str, Any]) -> PodWindow:
        return cls(
            pod=PodRef(cluster, str(data["namespace"]), str(data["name"])),
            deployment=str(data.get("deployment") or ""),
            flows=flows_from_dict(data.get("flows", {})),
            error=data.get("error"),
            current=bool(data.get("current", True)),
        )


@dataclass(frozen=True)
class Window:
    asked: float
    """The window asked for, seconds."""
    seconds: float
    """The span the readings cover: 0 with a single cycle, less than asked while history is short."""
    age: float
    """How long ago the latest cycle began."""
    pods: tuple[PodWindow, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "asked": self.asked,
            "seconds": self.seconds,
            "age": self.age,
            "pods": [p.as_dict() for p in self.pods],
        }

    @classmethod
    def from_dict(cls, cluster: str, data: Mapping[str, Any]) -> Window:
        return cls(
            asked=float(data["asked"]),
            seconds=float(data["seconds"]),
            age=float(data.get("age", 0.0)),
            pods=tuple(PodWindow.from_dict(cluster, p) for p in data.get("pods", [])),
        )


def prune(cycles: Sequence[Cycle], retention: Retention) -> list[Cycle]:
    """The cycles worth keeping once the last of `cycles` (in time order) is the latest."""
    if not cycles:
        return []
    now = cycles[-1].at
    start = max((i for i, c in enumerate(cycles) if c.at <= now - retention.longest), default=0)
    kept: list[Cycle] = []
    for i, cycle in enumerate(cycles[start:], start):
        if now - cycle.at <= retention.recent or i == start:
            kept.append(cycle)
            continue
        # Keep the newest cycle of each `spacing`-long slot: the same ones stay as time moves on.
        following = cycles[i + 1]
        if now - following.at <= retention.recent or _slot(following, retention) != _slot(cycle, retention):
            kept.append(cycle)
    return kept


def _slot(cycle: Cycle, retention: Retention) -> int:
    return int(cycle.at // retention.spacing)


class History:
    """The cycles of one cluster's collector, bounded by `retention`."""

    def __init__(self, retention: Retention | None = None) -> None:
        self.retention = retention or Retention()
        self._cycles: list[Cycle] = []

    def __len__(self) -> int:
        return len(self._cycles)

    def add(self, cycle: Cycle) -> None:
        if self._cycles and cycle.at <= self._cycles[-1].at:
            raise ValueError("cycles must be added in time order")
        self._cycles = prune([*self._cycles, cycle], self.retention)

    def window(self, seconds: float, now: float) -> Window:
        """Every pod's traffic over the last `seconds` (as far back as history goes)."""
        if not self._cycles:
            return Window(seconds, 0.0, 0.0, ())
        return window(self._cycles, seconds, now)


def window(cycles: Sequence[Cycle], seconds: float, now: float) -> Window:
    end = cycles[-1]
    first = max((i for i, c in enumerate(cycles) if c.at <= end.at - seconds), default=0)
    span = cycles[first:]
    start = span[0]
    pods = sorted({pod for c in span for pod in c.readings})
    return Window(
        asked=seconds,
        seconds=end.at - start.at,
        age=max(0.0, now - end.at),
        pods=tuple(_pod_window(pod, span) for pod in pods),
    )


def _pod_window(pod: PodRef, span: Sequence[Cycle]) -> PodWindow:
    start, end = span[0], span[-1]
    readings = [c.readings[pod] for c in span if pod in c.readings]
    good = [r for r in readings if r.flows is not None]
    last = end.readings.get(pod)
    deployment = readings[-1].deployment
    if last is not None and last.flows is None:
        return PodWindow(pod, deployment, NO_FLOWS, error=last.error or "it could not be read")
    if not good:
        return PodWindow(pod, deployment, NO_FLOWS, current=last is not None)
    latest = good[-1].flows or NO_FLOWS
    at_start = start.readings.get(pod)
    if at_start is None:
        # Its sidecar started after the window did: all it counted happened inside.
        baseline = NO_FLOWS
    else:
        # Read at the start, or (if it could not be read then) as early in the window as it could.
        baseline = at_start.flows if at_start.flows is not None else (good[0].flows or NO_FLOWS)
    return PodWindow(pod, deployment, changes(latest, baseline), current=last is not None)
