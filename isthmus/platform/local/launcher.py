"""Starting and stopping a local mesh from the host: `isthmus up` and `isthmus down`.

The daemon runs under `unshare` in fresh user, network, mount and PID
namespaces, so it needs no root, touches nothing of the host's network, and
everything it started dies with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from isthmus.platform.local import rpc
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.settings import MeshSettings

# Tool -> Debian package that provides it.
REQUIRED_TOOLS = {
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "ip": "iproute2",
    "iptables-restore": "iptables",
}
START_TIMEOUT = 180.0


class LaunchError(Exception):
    pass


def missing_tools() -> dict[str, str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return {tool: pkg for tool, pkg in REQUIRED_TOOLS.items() if shutil.which(tool, path=path) is None}


def is_running(paths: StatePaths) -> bool:
    try:
        return bool(rpc.call(paths.api_socket, {"op": "status"}, timeout=5).get("ok"))
    except (OSError, rpc.RpcError, ValueError):
        return False


def read_pids(paths: StatePaths) -> dict[str, int]:
    try:
        data = json.loads(paths.pidfile.read_text())
        return {k: int(v) for k, v in data.items()}
    except (OSError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def _child_of(pid: int, timeout: float = 5.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            if children:
                return int(children[0])
        time.sleep(0.01)
    return None


def start(
    paths: StatePaths, clusters: list[str], progress: Callable[[str], None], settings: MeshSettings | None = None
) -> dict[str, Any]:
    """Start the daemon (or tell a running one about new clusters and settings) and wait until it is ready.

    `settings` None keeps the mesh's stored settings (the defaults for a new mesh).
    """
    if is_running(paths):
        progress("a local mesh is already running; adding any new clusters")
        req: dict[str, Any] = {"op": "up", "clusters": clusters}
        if settings is not None:
            req["settings"] = settings.to_json()
        resp = rpc.call(paths.api_socket, req, timeout=START_TIMEOUT)
        if not resp.get("ok"):
            raise LaunchError(str(resp.get("error")))
        if resp.get("settings_changed"):
            progress("settings changed: control planes restarted with them (sidecars kept serving)")
        return rpc.call(paths.api_socket, {"op": "status"})
    if missing := missing_tools():
        pkgs = " ".join(sorted(set(missing.values())))
        raise LaunchError(f"missing {', '.join(sorted(missing))}: install them with `apt-get install {pkgs}`")
    if str(paths.home).startswith("/run/") or str(paths.home) == "/run":
        raise LaunchError(
            f"ISTHMUS_HOME {paths.home} is under /run, which the mesh replaces with its own; choose another directory"
        )
    paths.daemon_log.parent.mkdir(parents=True, exist_ok=True)
    paths.api_socket.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        paths.api_socket.unlink()
    argv = [
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc",
        "--kill-child",
        "--",
        sys.executable,
        "-m",
        "isthmus.platform.local.init",
        "--home",
        str(paths.home),
        "--clusters",
        ",".join(clusters),
        *(["--settings", settings.to_json()] if settings is not None else []),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
    with open(paths.daemon_log, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, env=env)
    init_pid = _child_of(proc.pid)
    paths.pidfile.write_text(json.dumps({"unshare": proc.pid, "init": init_pid or 0}))
    progress(f"started the isthmus daemon (pid {init_pid}); creating clusters {', '.join(clusters)}")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(
                f"the daemon exited with {proc.returncode}; see {paths.daemon_log}:\n{_tail(paths.daemon_log)}"
            )
        with contextlib.suppress(OSError, rpc.RpcError, ValueError):
            st = rpc.call(paths.api_socket, {"op": "status"}, timeout=5)
            if st.get("ok") and st.get("ready"):
                return st
        time.sleep(0.1)
    _kill(proc.pid, init_pid)
    raise LaunchError(
        f"the daemon was not ready within {START_TIMEOUT:.0f}s; see {paths.daemon_log}:\n{_tail(paths.daemon_log)}"
    )


def stop(paths: StatePaths, progress: Callable[[str], None], timeout: float = 60.0) -> bool:
    """Stop a running mesh; returns False if none was running."""
    pids = read_pids(paths)
    running = is_running(paths)
    if not running and not any(_alive(p) for p in pids.values() if p):
        with contextlib.suppress(FileNotFoundError):
            paths.pidfile.unlink()
        return False
    if running:
        progress("stopping pods and clusters")
        with contextlib.suppress(OSError, rpc.RpcError, ValueError):
            rpc.call(paths.api_socket, {"op": "down"}, timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids.values() if p):
        time.sleep(0.1)
    _kill(pids.get("unshare", 0), pids.get("init", 0))
    for f in (paths.pidfile, paths.api_socket):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    return True


def _kill(*pids: int | None) -> None:
    for pid in pids:
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def enter_argv(paths: StatePaths) -> list[str]:
    """The prefix that puts a host command inside the mesh's user, mount and PID namespaces."""
    pid = read_pids(paths).get("init")
    if not pid or not _alive(pid):
        raise LaunchError("no local mesh is running (start one with `isthmus up`)")
    # Keep our uid and groups: an unprivileged user may not setgroups inside the namespace,
    # and our uid is the one mapped to root there anyway.
    return ["nsenter", f"--target={pid}", "--user", "--mount", "--pid", "--preserve-credentials", "--"]
