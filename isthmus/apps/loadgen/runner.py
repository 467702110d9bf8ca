"""Sends the requests: sender threads take due times from one schedule and use keep-alive connections.

Threads rather than asyncio because http.client parses HTTP/1.1 correctly for free, and a few
dozen threads that mostly wait on sockets sustain several hundred requests per second.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from isthmus.apps.loadgen.options import Options, Target
from isthmus.apps.loadgen.report import Outcome, Tally, answered, failed

USER_AGENT = "isthmus-loadgen"
# Past the last due time, senders get this long beyond the worst case of their own timeouts
# (connect, send, answer, one retry) before the run is cut short.
_DEADLINE_SLACK_S = 2.0


@dataclass(frozen=True)
class Result:
    tallies: list[Tally]
    elapsed_s: float
    interrupted: bool


class Connections:
    """One sender's keep-alive connections, one per host and port."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._open: dict[tuple[str, int], http.client.HTTPConnection] = {}

    def fetch(self, target: Target) -> Outcome:
        key = (target.host, target.port)
        for attempt in (1, 2):
            connection = self._open.get(key)
            reused = connection is not None
            if connection is None:
                connection = self._open[key] = http.client.HTTPConnection(
                    target.host, target.port, timeout=self._timeout_s
                )
            try:
                connection.request("GET", target.path, headers={"User-Agent": USER_AGENT})
                response = connection.getresponse()
                body = response.read()
            except ConnectionError:
                self._drop(key)
                # A reused connection may have been closed by the server while idle; like browsers
                # and Go's net/http, try once more on a fresh one before calling it a failure.
                if reused and attempt == 1:
                    continue
                return failed("connection_error")
            except TimeoutError:
                self._drop(key)
                return failed("timeout")
            except OSError:
                self._drop(key)
                return failed("connection_error")
            except http.client.HTTPException:
                self._drop(key)
                return failed("bad_response")
            if response.will_close:
                self._drop(key)
            return answered(response.status, body)
        raise AssertionError("unreachable: the second attempt always returns")

    def _drop(self, key: tuple[str, int]) -> None:
        connection = self._open.pop(key, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        for key in list(self._open):
            self._drop(key)


class Schedule:
    """Hands out request numbers; request i is due at start + i / rate."""

    def __init__(self, options: Options, stop: threading.Event, clock: Callable[[], float]) -> None:
        self._options = options
        self._stop = stop
        self._clock = clock
        self._lock = threading.Lock()
        self._next = 0
        self.start = clock()

    def take(self) -> tuple[float, Target] | None:
        """The next request's due time and target, or None when the run is over."""
        with self._lock:
            i = self._next
            if i >= self._options.planned or self._stop.is_set():
                return None
            self._next += 1
        targets = self._options.targets
        return self.start + i / self._options.rate, targets[i % len(targets)]

    def send_all(self, tally: Tally) -> None:
        """A sender thread's body: take, wait until due, send, record; until the schedule runs out."""
        connections = Connections(self._options.timeout_s)
        try:
            while (job := self.take()) is not None:
                due, target = job
                wait_s = due - self._clock()
                if wait_s > 0 and self._stop.wait(wait_s):
                    return
                if self._clock() - due > self._options.timeout_s:
                    # Every sender was busy for longer than the timeout; waiting longer would only
                    # stretch the run, and the request has already failed from a client's view.
                    tally.record(target.url, failed("not_sent"), 0.0)
                    continue
                outcome = connections.fetch(target)
                tally.record(target.url, outcome, self._clock() - due)
        finally:
            connections.close()


def run(options: Options, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> Result:
    schedule = Schedule(options, stop, clock)
    tallies = [Tally() for _ in range(min(options.connections, options.planned))]
    senders = [
        threading.Thread(target=schedule.send_all, args=(tally,), name=f"sender-{n}", daemon=True)
        for n, tally in enumerate(tallies)
    ]
    for sender in senders:
        sender.start()
    last_due = (options.planned - 1) / options.rate
    deadline = schedule.start + last_due + 4 * options.timeout_s + _DEADLINE_SLACK_S
    for sender in senders:
        # join() with a timeout lets the main thread run the SIGTERM handler while it waits.
        while sender.is_alive() and clock() < deadline:
            sender.join(timeout=min(0.5, max(0.0, deadline - clock())))
    if any(sender.is_alive() for sender in senders):
        stop.set()
    # The last request is due 1/rate before the schedule ends; without this wait the achieved
    # rate of a healthy run would come out slightly above the target.
    stop.wait(max(0.0, schedule.start + options.planned / options.rate - clock()))
    return Result(tallies=tallies, elapsed_s=clock() - schedule.start, interrupted=stop.is_set())
