"""Inside a local mesh's namespaces: GET admin paths from many pods' sidecars, in parallel, in one process.

`admin_local.LocalAdminScraper` starts this with `python -m isthmus.viz.admin_worker`
under `nsenter` (the mesh's user, mount and PID namespaces), so it may enter each
pod's network namespace and reach the admin API on that pod's loopback. The job
comes as JSON on stdin, the replies go as JSON to stdout:

    in:  {"targets": [{"key": K, "netns": NAME}, ...], "paths": [PATH, ...], "timeout": SECONDS}
    out: {"replies": [{"key": K, "bodies": {PATH: BODY}} or {"key": K, "error": REASON}, ...]}
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from isthmus.model.mesh import ADMIN_PORT
from isthmus.platform.local.netns import entered

# Enough to hide the latency of a slow sidecar or two without crowding two cores.
PARALLEL = 8
ADMIN_HOST = "127.0.0.1"


class PodAdminConnection(http.client.HTTPConnection):
    """HTTP to a pod's loopback: every (re)connect opens the socket inside the pod's network namespace.

    Connecting anywhere else would reach the host's loopback, where another
    mesh's sidecar, or something else entirely, may listen on the same port.
    """

    def __init__(self, netns: str, timeout: float) -> None:
        super().__init__(ADMIN_HOST, ADMIN_PORT, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        with entered(self.netns):
            self.sock = socket.create_connection((self.host, self.port), self.timeout)


def fetch(netns: str, paths: list[str], timeout: float) -> dict[str, Any]:
    """Every path from one pod, or the first reason it failed; `timeout` bounds the whole pod."""
    deadline = time.monotonic() + timeout
    bodies: dict[str, str] = {}
    conn = PodAdminConnection(netns, timeout)
    try:
        for path in paths:
            left = deadline - time.monotonic()
            if left <= 0:
                return {"error": f"no complete answer within {timeout:.0f}s"}
            conn.timeout = left
            if conn.sock is not None:
                conn.sock.settimeout(left)
            conn.request("GET", path, headers={"Accept": "application/json"})
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace")
            if resp.status != 200:
                return {"error": f"GET {path} answered {resp.status}"}
            bodies[path] = body
    except FileNotFoundError:
        return {"error": "its network namespace is gone (the pod stopped)"}
    except ConnectionRefusedError:
        return {"error": "connection refused (its Envoy is not running)"}
    except TimeoutError:
        return {"error": f"no complete answer within {timeout:.0f}s"}
    except (OSError, http.client.HTTPException) as e:
        return {"error": str(e) or type(e).__name__}
    finally:
        conn.close()
    return {"bodies": bodies}


def run(job: dict[str, Any]) -> dict[str, Any]:
    targets: list[dict[str, Any]] = job["targets"]
    paths = [str(p) for p in job["paths"]]
    timeout = float(job["timeout"])
    with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(targets)))) as pool:
        results = list(pool.map(lambda t: fetch(str(t["netns"]), paths, timeout), targets))
    return {"replies": [{"key": t["key"], **r} for t, r in zip(targets, results, strict=True)]}


def main() -> int:
    try:
        job = json.load(sys.stdin)
    except ValueError as e:
        print(f"admin_worker: the job on stdin is not JSON: {e}", file=sys.stderr)
        return 2
    json.dump(run(job), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
