"""When the agent renews its certificate and how it backs off (pure)."""

from __future__ import annotations

from datetime import datetime

RENEW_AT = 0.7  # of the lifetime, counted from when the certificate arrived
RETRY_START = 0.2
RETRY_MAX = 10.0


def renew_delay(received: datetime, expires: datetime, now: datetime) -> float:
    """Seconds from `now` until renewal is due; 0 when it is due already."""
    due = received + (expires - received) * RENEW_AT
    return max(0.0, (due - now).total_seconds())


def retry_delay(attempt: int) -> float:
    """Exponential back-off for attempt 1, 2, ... capped at RETRY_MAX."""
    return float(min(RETRY_MAX, RETRY_START * 2 ** max(0, attempt - 1)))
