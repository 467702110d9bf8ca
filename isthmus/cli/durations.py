"""Durations as users type them on the command line: `90s`, `10m`, `24h`, `7d`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class DurationError(ValueError):
    pass


def parse_duration(text: str, flag: str) -> timedelta:
    """`text` as a duration; the error names `flag` and shows the accepted forms."""
    cleaned = text.strip().lower()
    parts = _PART.findall(cleaned)
    if not cleaned or "".join(n + u for n, u in parts) != cleaned:
        raise DurationError(f"{flag} {text!r} is not a duration: write it like 90s, 10m, 24h, 7d or 1h30m")
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in parts))
