"""From sidecar_latency's runs to its figures: medians over rounds, added latency, ratios.

Added latency is median(path) − median(direct); the ratio compares what the mesh
adds with what the minimal Envoy pair adds. Neighbours on a shared machine stall
whole runs now and then, so medians over rounds, not pooled samples, and a
bootstrap over rounds shows how far the ratio could move.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from bench import report

QUANTILES = ("p50", "p99", "p999")
QUANTILE_LABELS = {"p50": "p50", "p99": "p99", "p999": "p99.9"}
PAIRS = ("envoy-pair", "envoy-pair-mtls")
"""The floors the mesh is compared with: the minimal Envoy pair, plaintext and with mTLS."""


def _values(runs: Sequence[dict[str, Any]], path: str, rate: float, q: str) -> list[float]:
    return [r[q] for r in runs if r["path"] == path and r["rate"] == rate]


def _ratio(mesh: Sequence[float], pair: Sequence[float], base: Sequence[float]) -> float:
    pair_added = report.median(pair) - report.median(base)
    return (report.median(mesh) - report.median(base)) / pair_added if pair_added > 0 else float("nan")


def bootstrap(
    mesh: Sequence[float], pair: Sequence[float], base: Sequence[float], n: int = 2000
) -> tuple[float, float]:
    """5th and 95th percentile of the ratio when each path's rounds are resampled."""
    rng = random.Random(1)
    drawn = (
        _ratio(rng.choices(mesh, k=len(mesh)), rng.choices(pair, k=len(pair)), rng.choices(base, k=len(base)))
        for _ in range(n)
    )
    ratios = sorted(r for r in drawn if r == r)  # NaN (pair added nothing) would break the sort
    if not ratios:
        return float("nan"), float("nan")
    return ratios[int(0.05 * len(ratios))], ratios[int(0.95 * len(ratios)) - 1]


def summarize(runs: Sequence[dict[str, Any]], paths: Sequence[str], rates: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rate in rates:
        for name in paths:
            mine = [r for r in runs if r["path"] == name and r["rate"] == rate]
            row: dict[str, Any] = {"rounds": len(mine)}
            for q in QUANTILES:
                row[q] = report.median([r[q] for r in mine])
                row[f"added_{q}"] = row[q] - report.median(_values(runs, "direct", rate, q))
            cpu = [r["proxy_cpu_us_per_req"] for r in mine if r["proxy_cpu_us_per_req"] is not None]
            row["proxy_cpu_us_per_req"] = report.median(cpu) if cpu else None
            row["unverified_runs"] = sum(1 for r in mine if r["verified"] is False)
            row["incomplete_runs"] = sum(1 for r in mine if not r["completed"])
            out[f"{name}@{rate:.0f}"] = row
        for pair in PAIRS:
            ratios: dict[str, Any] = {}
            for q in QUANTILES:
                mesh, floor = _values(runs, "mesh", rate, q), _values(runs, pair, rate, q)
                direct, pod_net = _values(runs, "direct", rate, q), _values(runs, "pod-network", rate, q)
                ratios[q] = _ratio(mesh, floor, direct)
                ratios[f"{q}_bootstrap_90"] = bootstrap(mesh, floor, direct)
                # The sidecars alone: the mesh against the same pod network without them.
                floor_added = report.median(floor) - report.median(direct)
                mesh_added = report.median(mesh) - report.median(pod_net)
                ratios[f"{q}_vs_pod_network"] = mesh_added / floor_added if floor_added > 0 else float("nan")
            out[f"mesh/{pair}@{rate:.0f}"] = ratios
    return out


def render(summary: dict[str, Any], tput: dict[str, float], paths: Sequence[str], rates: Sequence[float]) -> str:
    rows = []
    for rate in rates:
        for name in paths:
            s = summary[f"{name}@{rate:.0f}"]
            added = [report.fmt(s[f"added_{q}"]) if name != "direct" else "–" for q in QUANTILES]
            notes = [f"{s[k]} {k.split('_')[0]}" for k in ("unverified_runs", "incomplete_runs") if s[k]]
            rows.append(
                [
                    f"{rate:,.0f}",
                    name,
                    *(report.fmt(s[q]) for q in QUANTILES),
                    *added,
                    report.fmt(s["proxy_cpu_us_per_req"]),
                    ", ".join(notes),
                ]
            )
    header = ["req/s", "path", "p50 µs", "p99 µs", "p99.9 µs", "+p50 µs", "+p99 µs", "+p99.9 µs", "proxy CPU µs/req"]
    text = report.table([*header, "notes"], rows)

    ratio_rows = []
    for pair in PAIRS:
        for rate in rates:
            r = summary[f"mesh/{pair}@{rate:.0f}"]
            for q in QUANTILES:
                lo, hi = r[f"{q}_bootstrap_90"]
                ratio_rows.append(
                    [
                        pair,
                        f"{rate:,.0f}",
                        QUANTILE_LABELS[q],
                        report.fmt(r[q], 2),
                        f"{report.fmt(lo, 2)} – {report.fmt(hi, 2)}",
                        report.fmt(r[f"{q}_vs_pod_network"], 2),
                    ]
                )
    text += "\n\nmesh-added / pair-added, both against direct (target ≤ 1.2 at p99):\n\n"
    text += report.table(
        ["floor", "req/s", "quantile", "ratio", "bootstrap 90% over rounds", "ratio, mesh against pod-network"],
        ratio_rows,
    )
    text += "\n\nmaximum sustained rate (median of rounds; p90 ≤ 10 ms from the due time):\n\n"
    text += report.table(["path", "req/s"], [[n, report.fmt(tput[n])] for n in paths])
    return text
