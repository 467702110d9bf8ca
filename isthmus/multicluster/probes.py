"""Probing a linked cluster's gateway: `GET /ready` every few seconds, and what the answers add up to.

`ProbeRecord` is pure (times are given to it): the verdict (alive after one
success, dead after `failures_until_dead` failures in a row, so one lost probe
does not flap every mirror), and latency percentiles over the last answers.
`HttpProber` is the I/O, from the linking cluster's node, as the callers' traffic goes.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from isthmus.multicluster.gateway import PROBE_PATH
from isthmus.platform.local import netns

WINDOW = 100
"""Latencies kept for the percentiles: the last 100 successful probes."""


class ProbeFailed(Exception):
    """The gateway did not answer its probe with 200; the message says what happened."""


class GatewayProber(Protocol):
    async def probe(self, ip: str, port: int, timeout: float) -> None:
        """Return when the gateway answered /ready with 200; raise ProbeFailed otherwise."""
        ...


@dataclass
class ProbeRecord:
    """One link's probes so far."""

    failures_until_dead: int = 2
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    alive: bool | None = None
    """None until the first probe has answered or failed."""
    consecutive_failures: int = 0
    last_success: float | None = None
    last_error: str = ""
    probes: int = 0

    def success(self, now: float, latency: float) -> bool:
        """Record an answer; True when this changes the verdict."""
        self.probes += 1
        self.latencies.append(latency)
        self.last_success, self.consecutive_failures, self.last_error = now, 0, ""
        return self._judge(True)

    def failure(self, error: str) -> bool:
        """Record a failed probe; True when this changes the verdict."""
        self.probes += 1
        self.consecutive_failures += 1
        self.last_error = error
        # The first probe decides at once: nothing is known that a single failure could outweigh.
        if self.alive is None or self.consecutive_failures >= self.failures_until_dead:
            return self._judge(False)
        return False

    def _judge(self, alive: bool) -> bool:
        changed = self.alive != alive
        self.alive = alive
        return changed

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the kept latencies, in seconds."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]

    def summary(self, now: float) -> dict[str, Any]:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 3)

        return {
            "alive": self.alive,
            "probes": self.probes,
            "latency_ms": {
                "p50": ms(self.percentile(50)),
                "p95": ms(self.percentile(95)),
                "p99": ms(self.percentile(99)),
            },
            "since_success_s": None if self.last_success is None else round(now - self.last_success, 3),
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
        }


class HttpProber:
    """GET /ready over plain HTTP from the linking cluster's node (the probe port carries no secrets)."""

    def __init__(self, node_netns: str | None) -> None:
        self.node_netns = node_netns

    async def probe(self, ip: str, port: int, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._get(ip, port), timeout)
        except TimeoutError:
            raise ProbeFailed(f"no answer from {ip}:{port} within {timeout:g}s") from None
        except OSError as e:
            raise ProbeFailed(f"{ip}:{port}: {e.strerror or e}") from None

    async def _get(self, ip: str, port: int) -> None:
        if self.node_netns:
            sock = netns.socket_in(self.node_netns)
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, (ip, port))
            except BaseException:
                sock.close()
                raise
            reader, writer = await asyncio.open_connection(sock=sock)
        else:
            reader, writer = await asyncio.open_connection(ip, port)
        try:
            writer.write(f"GET {PROBE_PATH} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or parts[1] != b"200":
            raise ProbeFailed(
                f"{ip}:{port}{PROBE_PATH} answered {status_line.decode(errors='replace').strip() or 'nothing'}"
            )
