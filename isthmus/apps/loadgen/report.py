"""What a load run produced: per-request outcomes tallied, summarised, and rendered. No I/O."""

from __future__ import annotations

import json
import math
import threading
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

PERCENTILES = (50, 90, 99)


@dataclass(frozen=True)
class Outcome:
    """How one request ended: `failure` is None exactly when it got a 2xx answer."""

    status: int | None
    """The HTTP status, or None when no answer arrived."""
    failure: str | None
    pod: str | None = None
    """The "pod" field of a JSON reply (whoami's), so the report can show the spread over replicas."""


def failed(reason: str) -> Outcome:
    return Outcome(status=None, failure=reason)


def answered(status: int, body: bytes) -> Outcome:
    return Outcome(
        status=status,
        failure=None if 200 <= status <= 299 else f"status_{status}",
        pod=pod_of(body),
    )


def pod_of(body: bytes) -> str | None:
    if not body.lstrip().startswith(b"{"):
        return None  # not JSON; skip the parse, it costs more than the rest of the bookkeeping
    try:
        pod = json.loads(body).get("pod")
    except (ValueError, AttributeError):
        return None
    return pod if isinstance(pod, str) else None


@dataclass
class Tally:
    """One sender thread's record. The lock lets the main thread read it if a sender overstays."""

    latencies_s: array[float] = field(default_factory=lambda: array("d"))
    """Answered requests only: a request that got no answer has no latency to speak of."""
    failures: Counter[str] = field(default_factory=Counter)
    pods: Counter[str] = field(default_factory=Counter)
    by_url: Counter[tuple[str, bool]] = field(default_factory=Counter)
    """(url, succeeded) -> requests."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, url: str, outcome: Outcome, latency_s: float) -> None:
        with self.lock:
            if outcome.status is not None:
                self.latencies_s.append(latency_s)
            if outcome.failure is not None:
                self.failures[outcome.failure] += 1
            if outcome.pod is not None:
                self.pods[outcome.pod] += 1
            self.by_url[url, outcome.failure is None] += 1

    def add(self, other: Tally) -> None:
        with other.lock:
            self.latencies_s.extend(other.latencies_s)
            self.failures.update(other.failures)
            self.pods.update(other.pods)
            self.by_url.update(other.by_url)


@dataclass(frozen=True)
class Report:
    target_rate: float
    duration_s: float
    elapsed_s: float
    achieved_rate: float
    """Answers (of any status) per second of elapsed time."""
    total: int
    successes: int
    failures: dict[str, int]
    latency_ms: dict[str, float] | None
    """p50, p90, p99 and max over answered requests; None when nothing was answered."""
    pods: dict[str, int]
    urls: dict[str, dict[str, int]]
    interrupted: bool
    """Stopped early by a signal or the hard deadline."""

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.successes == self.total

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(
    tallies: Iterable[Tally],
    urls: Sequence[str],
    target_rate: float,
    duration_s: float,
    elapsed_s: float,
    interrupted: bool,
) -> Report:
    tally = Tally()
    for t in tallies:
        tally.add(t)
    total = sum(tally.by_url.values())
    ordered = sorted(tally.latencies_s)
    latency_ms = None
    if ordered:
        latency_ms = {f"p{p}": round(percentile(ordered, p) * 1000, 3) for p in PERCENTILES}
        latency_ms["max"] = round(ordered[-1] * 1000, 3)
    return Report(
        target_rate=target_rate,
        duration_s=duration_s,
        elapsed_s=round(elapsed_s, 3),
        achieved_rate=round(len(ordered) / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        total=total,
        successes=total - sum(tally.failures.values()),
        failures=dict(tally.failures.most_common()),
        latency_ms=latency_ms,
        pods=dict(sorted(tally.pods.items())),
        urls={
            url: {"successes": tally.by_url[url, True], "failures": tally.by_url[url, False]}
            for url in dict.fromkeys(urls)
        },
        interrupted=interrupted,
    )


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "    -"


def render_text(report: Report) -> str:
    r = report
    failed_count = r.total - r.successes

    def row(label: str, count: int, rest: str = "") -> str:
        return f"{label:<20}{count:>8}  {rest}".rstrip()

    lines = [
        row(
            "requests",
            r.total,
            f"target {r.target_rate:g}/s for {r.duration_s:g} s, achieved {r.achieved_rate:g}/s "
            f"over {r.elapsed_s:.2f} s" + (" (interrupted)" if r.interrupted else ""),
        ),
        row("succeeded", r.successes, _share(r.successes, r.total)),
        row("failed", failed_count, _share(failed_count, r.total)),
    ]
    lines += [row(f"  {reason}", count) for reason, count in r.failures.items()]
    if r.latency_ms is None:
        lines.append("latency ms          (no answers)")
    else:
        lines.append(f"{'latency ms':<20}" + "  ".join(f"{k} {v:.2f}" for k, v in r.latency_ms.items()))
    if r.pods:
        width = max(len("pod"), *map(len, r.pods))
        answered_by_pods = sum(r.pods.values())
        lines += ["", f"{'pod':<{width}}  requests   share"]
        lines += [f"{pod:<{width}}  {count:>8}  {_share(count, answered_by_pods)}" for pod, count in r.pods.items()]
    width = max(len("url"), *map(len, r.urls))
    lines += ["", f"{'url':<{width}}  succeeded    failed"]
    lines += [f"{url:<{width}}  {c['successes']:>9}  {c['failures']:>8}" for url, c in r.urls.items()]
    return "\n".join(lines)
