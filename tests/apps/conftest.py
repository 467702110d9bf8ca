"""Start sample apps as real subprocesses on 127.0.0.1 and make sure they are gone afterwards."""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 10.0
# Settings the apps read from the environment; the tests' own environment must not leak in.
APP_ENV_VARS = ("PORT", "BIND_ADDRESS", "BANNER", "POD_NAME", "POD_NAMESPACE", "ISTHMUS_CLUSTER")


def app_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in APP_ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env | (extra or {})


@dataclass
class App:
    process: subprocess.Popen[str]
    port: int
    start_line: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> int:
        """SIGTERM, then SIGKILL if it lingers; returns the exit code (negative: killed by a signal)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode


def _first_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stderr is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return process.stderr.readline()


def start_app(name: str, *args: str, env: dict[str, str] | None = None) -> App:
    process = subprocess.Popen(
        [sys.executable, "-m", f"isthmus.apps.{name}", "--bind", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=app_env(env),
    )
    line = _first_line(process, START_TIMEOUT_S)
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if match is None:
        process.kill()
        _, rest = process.communicate()
        pytest.fail(f"{name} did not start: {line}{rest}")
    return App(process=process, port=int(match.group(1)), start_line=line)


def run_app(name: str, *args: str, timeout_s: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run a client-style app to completion (killed if it overruns timeout_s)."""
    return subprocess.run(
        [sys.executable, "-m", f"isthmus.apps.{name}", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=app_env(),
        timeout=timeout_s,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (as long as nobody grabs it in the meantime)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


StartApp = Callable[..., App]


@pytest.fixture
def start() -> Iterator[StartApp]:
    """start(name, *args, env=...) -> App; every app started is stopped when the test ends."""
    started: list[App] = []

    def _start(name: str, *args: str, env: dict[str, str] | None = None) -> App:
        app = start_app(name, *args, env=env)
        started.append(app)
        return app

    yield _start
    for app in started:
        app.stop()
