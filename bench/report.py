"""What every benchmark writes: the machine it ran on, a results JSON and a markdown table."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": now(),
        "loadavg": _loadavg(),
        "command": shlex.join([".venv/bin/python", "-m", _module_name(), *sys.argv[1:]]),
    }


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else sys.argv[0]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def save(name: str, data: dict[str, Any], started: str | None = None) -> Path:
    """Write bench/results/<name>-<time>.json; `started`: `now()` when the run began."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    record = {"benchmark": name, "started": started or now(), "machine": machine(), **data}
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def fmt(value: float | int | str | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if value != value:  # NaN
        return "–"
    return f"{value:,.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_header(data: dict[str, Any]) -> None:
    m = machine()
    print(f"machine: {m['nproc']} × {m['cpu_model']}, kernel {m['kernel']}; {m['date']}")
    print(f"command: {m['command']}")
    for key, value in data.items():
        print(f"{key}: {value}")
    print()
