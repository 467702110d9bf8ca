"""The traffic collector a cluster's control plane runs: every sidecar read every few seconds, kept for windows.

Envoy's counters are cumulative, so figures over "the last minute" need readings
from a minute ago. The collector reads the `TRAFFIC_STATS` page of every sidecar
of its cluster each `interval` (one parallel sweep, a `Cycle`), keeps the bounded
`History`, and answers window queries on the control plane's status socket. It
stores nothing on disk: after a control plane restart, windows start short.

Where the sidecars are and how to reach them is the platform's business: a `Fleet`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from isthmus.viz.admin import AdminReply, PodRef, StaticAdminScraper
from isthmus.viz.history import Cycle, History, Reading, Retention, Window
from isthmus.viz.traffic import TRAFFIC_STATS, StatsFormatError, flows_from_stats

log = logging.getLogger(__name__)

QUERY_OP = "traffic"
"""The status-socket operation: {"op": "traffic", "window": SECONDS} -> {"ok": true, "window": ..., ...}."""


class FleetError(Exception):
    """The platform cannot say which sidecars run right now."""


@dataclass(frozen=True)
class Sidecar:
    """A pod whose sidecar the collector should read."""

    pod: PodRef
    deployment: str


class Fleet(Protocol):
    """The sidecars of one cluster, and a way to read their admin APIs."""

    def sidecars(self) -> Sequence[Sidecar]:
        """Every pod with a running sidecar now; raises FleetError when that cannot be known."""
        ...

    def scrape(self, pods: Sequence[PodRef], paths: Sequence[str]) -> dict[PodRef, AdminReply]: ...


class StaticFleet:
    """A fake fleet for tests: a settable list of sidecars, read through a `StaticAdminScraper`."""

    def __init__(self, sidecars: Sequence[Sidecar], scraper: StaticAdminScraper) -> None:
        self.listed: Sequence[Sidecar] | None = list(sidecars)
        self.scraper = scraper

    def sidecars(self) -> Sequence[Sidecar]:
        if self.listed is None:
            raise FleetError("the platform is not answering")
        return self.listed

    def scrape(self, pods: Sequence[PodRef], paths: Sequence[str]) -> dict[PodRef, AdminReply]:
        return self.scraper.scrape(pods, paths)


@dataclass(frozen=True)
class CollectorSettings:
    interval: float = 5.0
    """Seconds between the starts of two sweeps; the shortest window is two of them."""
    retention: Retention = field(default_factory=Retention)

    @property
    def shortest_window(self) -> float:
        return 2 * self.interval


@dataclass(frozen=True)
class CollectorStats:
    """What the collector itself did, for the control plane's own metrics."""

    sweeps: int
    """Sweeps recorded since the control plane started."""
    failed_sweeps: int
    """Sweeps that could not happen (the platform did not list the sidecars, or a bug)."""
    last_sweep_seconds: float
    """How long the latest sweep took."""
    read: int
    """Sidecars the latest sweep read."""
    unreadable: int
    """Sidecars the latest sweep could not read."""


def read_reply(reply: AdminReply, deployment: str) -> Reading:
    if not reply.ok:
        return Reading(deployment, None, reply.error or "no answer")
    try:
        return Reading(deployment, flows_from_stats(reply.bodies[TRAFFIC_STATS]))
    except (StatsFormatError, KeyError) as e:
        return Reading(deployment, None, f"its admin API answered something unexpected ({e})")


class Collector:
    def __init__(
        self,
        fleet: Fleet,
        settings: CollectorSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fleet = fleet
        self.settings = settings or CollectorSettings()
        self.clock = clock
        self.history = History(self.settings.retention)
        self.last_error: str | None = None
        """Why the latest sweep did not happen (the platform could not list the sidecars)."""
        self._sweeps = self._failed = 0
        self._last_seconds = 0.0
        self._last: Cycle | None = None

    def sweep(self) -> Cycle | None:
        """Read every sidecar once (blocking); None when the platform could not list them."""
        at = self.clock()
        try:
            listed = {s.pod: s.deployment for s in self.fleet.sidecars()}
        except FleetError as e:
            self.last_error = str(e)
            return None
        self.last_error = None
        replies: Mapping[PodRef, AdminReply] = self.fleet.scrape(sorted(listed), [TRAFFIC_STATS]) if listed else {}
        readings = {
            pod: read_reply(replies.get(pod) or AdminReply(pod, error="no answer"), deployment)
            for pod, deployment in listed.items()
        }
        self._last_seconds = self.clock() - at
        return Cycle(at, readings)

    def _record(self, cycle: Cycle | None) -> None:
        if cycle is None:
            self._failed += 1
            return
        self.history.add(cycle)
        self._sweeps += 1
        self._last = cycle

    def collect_once(self) -> None:
        self._record(self.sweep())

    def stats(self) -> CollectorStats:
        readings = self._last.readings.values() if self._last else ()
        unreadable = sum(1 for r in readings if r.flows is None)
        return CollectorStats(self._sweeps, self._failed, self._last_seconds, len(readings) - unreadable, unreadable)

    async def run(self) -> None:
        """Sweep every `interval` until cancelled; a failing sweep is logged and the next one tried."""
        while True:
            began = self.clock()
            try:
                cycle = await asyncio.to_thread(self.sweep)
                self._record(cycle)
                if cycle is None:
                    log.warning("traffic collector: cannot list the sidecars (%s)", self.last_error)
            except Exception:
                # Metrics must never take the control plane down; the next sweep may well work.
                self._failed += 1
                log.exception("traffic collector: sweep failed")
            await asyncio.sleep(max(0.0, self.settings.interval - (self.clock() - began)))

    def window(self, seconds: float) -> Window:
        return self.history.window(seconds, self.clock())

    def answer(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The status socket's QUERY_OP: the window asked for, or why not."""
        seconds = request.get("window")
        longest = self.settings.retention.longest
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            return {"ok": False, "error": "window must be a number of seconds"}
        if not 0 < seconds <= longest:
            return {"ok": False, "error": f"window must be more than 0 and at most {longest:g} seconds"}
        return {
            "ok": True,
            "interval": self.settings.interval,
            "collector_error": self.last_error,
            "window": self.window(float(seconds)).as_dict(),
        }
