"""Keeps one process running, restarting it with back-off when it exits, as a kubelet does a container."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
# A process that ran this long before exiting is considered to have worked; back-off starts over.
STABLE_AFTER = 10.0


class Supervised:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.restarts = 0
        self.last_exit: int | None = None
        self._on_change = on_change
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc else None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"supervise {self.name}")

    async def wait_started(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._started.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def _run(self) -> None:
        backoff = BACKOFF_START
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        while not self._stopping:
            began = time.monotonic()
            with open(self.log_path, "ab", buffering=0) as out:
                try:
                    self._proc = await asyncio.create_subprocess_exec(
                        *self.argv,
                        env=self.env,
                        cwd=self.cwd,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=out,
                        stderr=out,
                        start_new_session=True,
                    )
                except OSError as e:
                    out.write(f"isthmus: cannot start {self.argv[0]}: {e}\n".encode())
                    self._proc = None
                else:
                    self._started.set()
                    self._on_change()
                    self.last_exit = await self._proc.wait()
                    out.write(f"isthmus: {self.name} exited with {self.last_exit}\n".encode())
            if self._stopping:
                break
            self._on_change()
            if time.monotonic() - began > STABLE_AFTER:
                backoff = BACKOFF_START
            log.warning("%s exited (%s); restarting in %.1fs", self.name, self.last_exit, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            self.restarts += 1

    async def stop(self, grace: float = 5.0) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kill(self) -> None:
        """Kill the process as a crash would; the supervisor restarts it."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
