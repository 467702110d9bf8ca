"""A local mesh for one benchmark run: `isthmus up` in a private state dir, `isthmus down` always.

Commands go through the `isthmus` CLI; `call` talks to the daemon's API socket
directly (what the CLI sends) for timings a CLI start-up would blur.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil

from isthmus.platform.local import rpc

ISTHMUS = str(Path(sys.executable).parent / "isthmus")


@dataclass(frozen=True)
class PodProcs:
    """Host-side processes of one pod (pids in the host's PID namespace)."""

    pod: str
    envoy: psutil.Process | None
    agent: tuple[psutil.Process, ...]
    """The sidecar agent (it supervises Envoy and renews certificates) and any helper it runs now."""
    apps: tuple[psutil.Process, ...]

    @property
    def sidecar(self) -> tuple[psutil.Process, ...]:
        """Everything the mesh adds to the pod."""
        return (*self.agent, *((self.envoy,) if self.envoy is not None else ()))


class Mesh:
    def __init__(self, keep_state: bool = False) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="bench-home-", dir="/tmp"))
        self.keep_state = keep_state

    def __enter__(self) -> Mesh:
        try:
            self.cli("up", "--clusters", "local", timeout=240)
        except BaseException:
            self._down()
            raise
        return self

    def __exit__(self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None) -> None:
        self._down()

    def _down(self) -> None:
        subprocess.run([ISTHMUS, "--home", str(self.home), "down"], capture_output=True, timeout=120, check=False)
        if not self.keep_state:
            shutil.rmtree(self.home, ignore_errors=True)
        else:
            print(f"mesh state kept in {self.home}", file=sys.stderr)

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        proc = subprocess.run(
            [ISTHMUS, "--home", str(self.home), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"isthmus {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def apply(self, manifest: str, wait: bool = True) -> None:
        self.cli("apply", "-f", "-", *(["--wait", "--timeout", "120"] if wait else []), stdin=manifest, timeout=180)

    def call(self, req: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        resp = rpc.call(self.home / "run" / "api.sock", req, timeout=timeout)
        if not resp.get("ok"):
            raise RuntimeError(f"daemon refused {req.get('op')}: {resp.get('error')}")
        return resp

    def get(self, kind: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.cli("get", kind, "-o", "json"))["items"]
        return items

    def pod_of(self, deployment: str) -> dict[str, Any]:
        pods = [p for p in self.get("pods") if p["deployment"] == deployment and p["phase"] == "Running"]
        if len(pods) != 1:
            raise RuntimeError(f"expected one running pod of {deployment}, found {[p['name'] for p in pods]}")
        return pods[0]

    def cluster_ip(self, service: str) -> str:
        for svc in self.get("services"):
            if svc["metadata"]["name"] == service:
                ip: str = svc["spec"]["clusterIP"]
                return ip
        raise RuntimeError(f"no service {service}")

    def exec_argv(self, pod: str, *cmd: str) -> list[str]:
        return [ISTHMUS, "--home", str(self.home), "exec", pod, "--", *cmd]

    def pod_processes(self) -> dict[str, PodProcs]:
        """Each pod's sidecar and app processes, found under the mesh's init process.

        A pod's processes carry POD_NAME in their environment; its Envoy is the one
        started with the bootstrap in the pod's state dir, its agent (and the agent's
        helpers) run isthmus.proxy.* modules; the rest (bar the nsenter/unshare/sh that exec the
        command) are the app's.
        """
        init = json.loads((self.home / "run" / "daemon.pid").read_text())["init"]
        envoys: dict[str, psutil.Process] = {}
        agents: dict[str, list[psutil.Process]] = {}
        apps: dict[str, list[psutil.Process]] = {}
        for proc in psutil.Process(init).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                env = proc.environ()
                pod = env.get("POD_NAME")
                if not pod:
                    continue
                cmd = proc.cmdline()
                bootstrap = f"/pods/local/{env.get('POD_NAMESPACE', 'default')}/{pod}/envoy.json"
                # First: the agent's --bootstrap names the same file as Envoy's -c.
                if any(arg.startswith("isthmus.proxy.") for arg in cmd):
                    agents.setdefault(pod, []).append(proc)
                elif any(arg.endswith(bootstrap) for arg in cmd):
                    envoys[pod] = proc
                elif proc.name() not in ("nsenter", "unshare", "sh", "mount"):
                    apps.setdefault(pod, []).append(proc)
        pods = envoys.keys() | agents.keys() | apps.keys()
        return {p: PodProcs(p, envoys.get(p), tuple(agents.get(p, [])), tuple(apps.get(p, []))) for p in sorted(pods)}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
