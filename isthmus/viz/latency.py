"""Latency distributions as Envoy keeps them, and their percentiles. Pure.

Envoy records each request time (whole milliseconds) in a log-linear histogram with
two significant digits: bins like [12, 13) or [100, 110), so a bin is at most 10%
wide (the value 0, under a millisecond, has a bin of its own). The admin API's
`histogram_buckets=detailed` gives those bins with their counts since Envoy started,
so the difference of two readings is the distribution of the requests in between,
and a percentile read from it is off by less than one bin's width. (Envoy's
Prometheus page sums the same data into 20 fixed buckets, 25/50/100/250 ms..., far
too coarse to read a percentile from.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Bin = tuple[float, float, int]
"""(lower bound, width, count): values in [lower, lower + width); width 0 is the bin of exactly `lower`."""


@dataclass(frozen=True)
class Histogram:
    """A distribution of values (milliseconds), as Envoy's bins sorted by lower bound."""

    bins: tuple[Bin, ...] = ()

    @classmethod
    def of(cls, bins: Iterable[Bin]) -> Histogram:
        """Bins in any order; those with the same lower bound added up, empty ones dropped."""
        counts: dict[float, int] = {}
        widths: dict[float, float] = {}
        for lower, width, count in bins:
            counts[lower] = counts.get(lower, 0) + count
            widths[lower] = max(width, widths.get(lower, 0.0))
        return cls(tuple((lower, widths[lower], counts[lower]) for lower in sorted(counts) if counts[lower]))

    @property
    def count(self) -> int:
        return sum(count for _, _, count in self.bins)

    def plus(self, other: Histogram) -> Histogram:
        if not other.bins:
            return self
        if not self.bins:
            return other
        return Histogram.of((*self.bins, *other.bins))

    def minus(self, earlier: Histogram) -> Histogram | None:
        """What was recorded since `earlier`; None if a bin went down (Envoy restarted in between)."""
        before = {lower: count for lower, _, count in earlier.bins}
        out = []
        for lower, width, count in self.bins:
            left = count - before.pop(lower, 0)
            if left < 0:
                return None
            out.append((lower, width, left))
        if any(before.values()):
            return None  # a bin that had counts is gone: a new histogram
        return Histogram.of(out)

    def quantile(self, q: float) -> float | None:
        """The value below which a share `q` (0..1) of the values lie; None when empty.

        Within a bin the values are taken as evenly spread, as Prometheus's
        histogram_quantile does.
        """
        total = self.count
        if total == 0:
            return None
        rank = min(max(q, 0.0), 1.0) * total
        seen = 0
        for lower, width, count in self.bins:
            if seen + count >= rank:
                return lower + width * max(rank - seen, 0.0) / count
            seen += count
        lower, width, _ = self.bins[-1]
        return lower + width

    def as_list(self) -> list[list[float]]:
        return [[lower, width, count] for lower, width, count in self.bins]

    @classmethod
    def from_list(cls, data: Iterable[Any]) -> Histogram:
        return cls.of((float(b[0]), float(b[1]), int(b[2])) for b in data)


EMPTY = Histogram()


def parse_detailed(entry: Mapping[str, Any]) -> Histogram:
    """One histogram of `/stats?format=json&histogram_buckets=detailed`: its cumulative `totals`."""
    bins = []
    for b in entry.get("totals", []):
        if isinstance(b, dict):
            bins.append((float(b.get("lower_bound", 0)), float(b.get("width", 0)), int(b.get("count", 0))))
    return Histogram.of(bins)
