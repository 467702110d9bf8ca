"""The open-loop load generator lg (bench/lg.c, the team's tool): build it, run it, read its line.

lg times each request from when it was due, so queueing shows as latency;
see /work/shared/tools/README.md for why the usual tools hide it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SOURCE = BENCH / "lg.c"
BINARY = BENCH / ".build" / "lg"


def build() -> Path:
    """Compile lg with `cc -O2` unless the binary is newer than its source."""
    if not BINARY.exists() or BINARY.stat().st_mtime < SOURCE.stat().st_mtime:
        BINARY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", str(BINARY), str(SOURCE)], check=True)
    return BINARY


@dataclass(frozen=True)
class Target:
    """Where lg sends: `prefix` runs it elsewhere (e.g. `isthmus exec POD --`)."""

    addr: str
    port: int
    host: str
    prefix: tuple[str, ...] = ()


@dataclass(frozen=True)
class LgRun:
    rate: float
    achieved_rps: float
    total: int
    """Every answered request, warm-up included."""
    outstanding: int
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    u_p99: float
    """Microseconds; p* from the due time, u_* from the actual send."""
    client_cpu_s: float

    @property
    def completed(self) -> bool:
        return self.outstanding == 0


def parse(line: str) -> LgRun:
    fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    return LgRun(
        rate=float(fields["rate"]),
        achieved_rps=float(fields["achieved_rps"]),
        total=int(fields["total"]),
        outstanding=int(fields["outstanding_at_end"]),
        p50=float(fields["p50"]),
        p90=float(fields["p90"]),
        p99=float(fields["p99"]),
        p999=float(fields["p999"]),
        max=float(fields["max"]),
        u_p99=float(fields["u_p99"]),
        client_cpu_s=float(fields["client_cpu_s"]),
    )


def run(target: Target, rate: float, conns: int, seconds: float, warmup: float) -> LgRun:
    """One bounded lg run (lg itself gives up 5 s after the last request was due)."""
    argv = [
        *target.prefix,
        "env",
        f"LG_ADDR={target.addr}",
        f"LG_HOST={target.host}",
        str(BINARY),
        str(target.port),
        f"{rate:.0f}",
        str(conns),
        str(seconds),
        str(warmup),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + warmup + 30, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("lg ")]
    if not lines:  # 3 = requests still outstanding at the end: a result, not a failure
        raise RuntimeError(f"lg failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return parse(lines[-1])
