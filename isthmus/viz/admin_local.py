"""The admin API scraper for the local platform: one helper process reads every pod's sidecar.

A pod's admin API answers on the pod's own loopback only. Rather than one
`nsenter` per pod and path, one process (`admin_worker`) enters the mesh's
namespaces once and visits each pod's network namespace from there, in parallel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from isthmus.platform.local import launcher
from isthmus.platform.local.paths import StatePaths
from isthmus.viz.admin import AdminReply, PodRef
from isthmus.viz.admin_worker import PARALLEL

POD_TIMEOUT = 5.0
"""Bound on reading all paths from one sidecar."""
STARTUP_ALLOWANCE = 15.0
"""The helper's own start (nsenter, Python, imports) on a busy machine."""


class LocalAdminScraper:
    """Reads sidecars of a running local mesh, given each pod's network namespace.

    netns: the network namespace of every pod that runs a sidecar, by pod (as the
    platform API lists them); a pod missing from it is reported as having none.
    """

    def __init__(self, paths: StatePaths, netns: Mapping[PodRef, str], pod_timeout: float = POD_TIMEOUT) -> None:
        self.paths = paths
        self.netns = dict(netns)
        self.pod_timeout = pod_timeout

    def scrape(self, pods: Sequence[PodRef], paths: Sequence[str]) -> dict[PodRef, AdminReply]:
        replies = {p: AdminReply(p, error="it has no running sidecar") for p in pods if p not in self.netns}
        reachable = [p for p in pods if p in self.netns]
        if reachable:
            replies.update(self._run(reachable, paths))
        return replies

    def _run(self, pods: Sequence[PodRef], paths: Sequence[str]) -> dict[PodRef, AdminReply]:
        def everyone(reason: str) -> dict[PodRef, AdminReply]:
            return {p: AdminReply(p, error=reason) for p in pods}

        try:
            prefix = launcher.enter_argv(self.paths)
        except launcher.LaunchError as e:
            return everyone(str(e))
        # And the mesh's network namespace: after visiting a pod, a worker thread must go
        # back to a network namespace the mesh's user namespace owns (the host's it may not).
        prefix.insert(prefix.index("--"), "--net")
        job = {
            "targets": [{"key": i, "netns": self.netns[p]} for i, p in enumerate(pods)],
            "paths": list(paths),
            "timeout": self.pod_timeout,
        }
        # The worker runs PARALLEL pods at a time, each bounded by pod_timeout.
        rounds = -(-len(pods) // PARALLEL)
        budget = STARTUP_ALLOWANCE + rounds * self.pod_timeout
        argv = [*prefix, sys.executable, "-m", "isthmus.viz.admin_worker"]
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}
        try:
            proc = subprocess.run(argv, input=json.dumps(job), capture_output=True, text=True, timeout=budget, env=env)
        except subprocess.TimeoutExpired:
            return everyone(f"the admin reader did not finish within {budget:.0f}s")
        except OSError as e:
            return everyone(f"cannot start the admin reader: {e}")
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            return everyone(f"the admin reader failed: {reason}")
        try:
            found = json.loads(proc.stdout)["replies"]
        except (ValueError, KeyError, TypeError):
            return everyone("the admin reader answered with something that is not its JSON reply")
        out = everyone("the admin reader gave no answer for it")
        for reply in found:
            pod = pods[int(reply["key"])]
            if "error" in reply:
                out[pod] = AdminReply(pod, error=str(reply["error"]))
            else:
                out[pod] = AdminReply(pod, {str(k): str(v) for k, v in reply["bodies"].items()})
        return out
