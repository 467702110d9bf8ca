"""Prometheus's text exposition format (version 0.0.4), written from plain values. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = Mapping[str, str]


@dataclass(frozen=True)
class Sample:
    value: float
    labels: tuple[tuple[str, str], ...] = ()
    suffix: str = ""
    """`_bucket`, `_sum`, `_count` for a histogram's series."""


@dataclass(frozen=True)
class Family:
    """One metric: its name, type, help line and samples."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    samples: tuple[Sample, ...]


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


def simple(name: str, kind: Literal["counter", "gauge"], help: str, values: Iterable[tuple[Labels, float]]) -> Family:
    return Family(name, kind, help, tuple(Sample(v, tuple(sorted(ls.items()))) for ls, v in values))


def histogram(name: str, help: str, base: Labels, buckets: Sequence[tuple[float, int]], total: float) -> Family:
    """buckets: (upper bound, cumulative count), the last one +inf."""
    common = tuple(sorted(base.items()))
    samples = [
        Sample(count, tuple(sorted({**base, "le": _number(bound)}.items())), "_bucket") for bound, count in buckets
    ]
    count = buckets[-1][1] if buckets else 0
    samples += [Sample(total, common, "_sum"), Sample(count, common, "_count")]
    return Family(name, "histogram", help, tuple(samples))


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for f in families:
        # HELP escapes backslashes and newlines only; label values escape quotes too.
        help_text = f.help.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {f.name} {help_text}")
        lines.append(f"# TYPE {f.name} {f.kind}")
        for s in f.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels)
            series = f"{f.name}{s.suffix}" + (f"{{{label_text}}}" if label_text else "")
            lines.append(f"{series} {_number(s.value)}")
    return "\n".join(lines) + "\n"
