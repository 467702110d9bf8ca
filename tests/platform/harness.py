"""Drives a real local mesh through the `isthmus` CLI, as a user would, for the integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ISTHMUS = str(Path(sys.executable).parent / "isthmus")
REPO = Path(__file__).resolve().parents[2]


def host_network_state() -> dict[str, str]:
    """What the host's network looks like, to prove a mesh left nothing behind."""

    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout
        except FileNotFoundError:
            return ""

    return {
        "links": "\n".join(
            sorted(line.split(":")[1].strip() for line in run("ip", "-o", "link").splitlines() if ":" in line)
        ),
        "netns": run("ip", "netns", "list"),
        "routes": run("ip", "route"),
        "iptables": "\n".join(line for line in run("iptables-save").splitlines() if not line.startswith("#")),
    }


def processes_mentioning(text: str) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            out.append(f"{pid}: {cmdline[:200]}")
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@dataclass
class Mesh:
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "ISTHMUS_HOME": str(self.home)}

    def run(
        self, *args: str, input: str | None = None, timeout: float = 180, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [ISTHMUS, *args], env=self.env, input=input, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"isthmus {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [ISTHMUS, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def loadgen(self, client: str, url: str, rate: int, seconds: int) -> Load:
        """A bounded open-loop request stream from `client` (a pod) to `url`, running in the background."""
        argv = ["python", "-m", "isthmus.apps.loadgen", url, "--rate", str(rate), "--duration", str(seconds)]
        return Load(self.popen("exec", client, "--", *argv, "--json"), seconds)

    def apply(self, manifest: str, *extra: str) -> str:
        return self.run("apply", "-f", "-", "--wait", *extra, input=manifest).stdout

    def pods(self, deployment: str | None = None, cluster: str | None = None) -> list[dict[str, Any]]:
        args = ["get", "pods", "-o", "json", "-A"] + (["--cluster", cluster] if cluster else [])
        items: list[dict[str, Any]] = json.loads(self.run(*args).stdout)["items"]
        return [p for p in items if deployment is None or p["deployment"] == deployment]

    def pod(self, deployment: str, cluster: str | None = None) -> str:
        pods = [p for p in self.pods(deployment, cluster) if p["phase"] == "Running"]
        assert pods, f"no running pod of {deployment}"
        return str(pods[0]["name"])

    def exec(self, pod: str, *cmd: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("exec", pod, "--", *cmd, timeout=timeout, check=check)

    def curl_json(self, pod: str, url: str) -> dict[str, Any]:
        out = self.exec(pod, "curl", "-sS", "--fail", "-m", "5", url).stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def init_pid(self) -> int:
        return int(json.loads((self.home / "run" / "daemon.pid").read_text())["init"])

    def kill9(self) -> None:
        os.kill(self.init_pid(), signal.SIGKILL)


@dataclass
class Load:
    """A running `isthmus.apps.loadgen`; use it in a `with` block so it is stopped even when a test fails."""

    proc: subprocess.Popen[str]
    seconds: int

    def report(self) -> dict[str, Any]:
        """Wait for the stream to finish and return loadgen's JSON report."""
        out, err = self.proc.communicate(timeout=self.seconds + 60)
        assert out, f"loadgen printed no report (exit {self.proc.returncode}): {err}"
        result: dict[str, Any] = json.loads(out)
        return result

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
