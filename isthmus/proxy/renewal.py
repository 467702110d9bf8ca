"""When the agent renews its certificate: on schedule, on a rotation's signal, and how it backs off."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

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


class RecertifyFile:
    """A generation number in a file of the mesh's state: when it changes, the agent gets a new certificate now.

    `isthmus identity rotate` bumps it after switching a cluster's issuer or the
    mesh's trust bundle. The agent looks once a second; a look is one stat() call
    (the file is replaced by rename, so a change always shows in its inode), and
    the file is read only when that changed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._seen = self._read()
        self._answered = self._seen
        """The generation the current certificate answers (the one in force when it was requested)."""

    def wanted(self) -> str | None:
        """The generation to re-certify for, or None while the certificate is current."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            self._seen = self._read()
        return self._seen if self._seen != self._answered else None

    def answered(self, generation: str | None) -> None:
        """A certificate requested at `generation` is in place."""
        self._answered = generation

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except OSError:
            return None
