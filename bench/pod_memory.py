"""Private memory (USS) of each meshed pod's sidecar and of its app, idle and after traffic.

Deploys examples/demo.yaml, finds each pod's processes on the host (under the
mesh's init process, by POD_NAME and the sidecar's bootstrap path) and reads
psutil's memory_full_info (USS = private pages, from /proc/PID/smaps). The
sidecar is Envoy plus, where it stays running, the agent that supervises it.

    .venv/bin/python -m bench.pod_memory [--traffic-seconds 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from bench import loadgen, report
from bench.mesh import Mesh

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
MB = 1024 * 1024


def mem(proc: psutil.Process) -> dict[str, float]:
    info = proc.memory_full_info()
    return {"uss_mb": info.uss / MB, "pss_mb": info.pss / MB, "rss_mb": info.rss / MB}


def private_by_mapping(proc: psutil.Process) -> dict[str, float]:
    """Private MB grouped as the binary's own pages, heap/anonymous, and the rest."""
    out = {"binary": 0.0, "anonymous": 0.0, "other": 0.0}
    exe = proc.exe()
    for m in proc.memory_maps(grouped=True):
        private = (m.private_clean + m.private_dirty) / MB
        if m.path == exe:
            out["binary"] += private
        elif m.path in ("", "[anon]", "[heap]") or m.path.startswith("[anon"):
            out["anonymous"] += private
        else:
            out["other"] += private
    return out


def envoy_memory(mesh: Mesh, pod: str) -> dict[str, Any]:
    """The sidecar's own view (tcmalloc): allocated vs. heap size, from its admin API."""
    with contextlib.suppress(RuntimeError, ValueError):
        raw: dict[str, Any] = json.loads(mesh.cli("exec", pod, "--", "curl", "-s", "-m", "5", "127.0.0.1:4191/memory"))
        return {k: int(v) / MB for k, v in raw.items() if str(v).isdigit()}
    return {}


def snapshot(mesh: Mesh) -> list[dict[str, Any]]:
    rows = []
    for pod, procs in sorted(mesh.pod_processes().items()):
        row: dict[str, Any] = {"pod": pod, "envoy": None, "agent": None, "apps": []}
        if procs.envoy is not None:
            row["envoy"] = {
                "pid": procs.envoy.pid,
                **mem(procs.envoy),
                "private_by_mapping_mb": private_by_mapping(procs.envoy),
                "envoy_memory_mb": envoy_memory(mesh, pod),
            }
        if procs.agent:
            parts = [mem(a) for a in procs.agent]
            row["agent"] = {
                "pids": [a.pid for a in procs.agent],
                "cmds": [" ".join(a.cmdline()[1:3]) for a in procs.agent],
                **{k: sum(part[k] for part in parts) for k in parts[0]},
            }
        row["sidecar_uss_mb"] = sum(row[k]["uss_mb"] for k in ("envoy", "agent") if row[k]) if procs.sidecar else None
        row["sidecar_pss_mb"] = sum(row[k]["pss_mb"] for k in ("envoy", "agent") if row[k]) if procs.sidecar else None
        for app in procs.apps:
            row["apps"].append({"pid": app.pid, "cmd": " ".join(app.cmdline()[:4]), **mem(app)})
        rows.append(row)
    return rows


def mesh_processes(mesh: Mesh) -> list[dict[str, Any]]:
    """The control plane's own processes (not per pod), for scale."""
    init = json.loads((mesh.home / "run" / "daemon.pid").read_text())["init"]
    out = []
    for proc in [psutil.Process(init), *psutil.Process(init).children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            cmd = proc.cmdline()
            if any(m in " ".join(cmd) for m in ("isthmus.platform.local", "isthmus.controlplane")):
                out.append({"pid": proc.pid, "cmd": " ".join(c for c in cmd[1:4]), **mem(proc)})
    return out


def render(label: str, rows: list[dict[str, Any]]) -> str:
    def mb(part: dict[str, Any] | None, key: str) -> str:
        return report.fmt(part[key], 1) if part else "–"

    lines = []
    for r in rows:
        envoy, agent, apps = r["envoy"], r["agent"], r["apps"]
        lines.append(
            [
                r["pod"],
                report.fmt(r["sidecar_uss_mb"], 1),
                mb(envoy, "uss_mb"),
                mb(agent, "uss_mb"),
                report.fmt(r["sidecar_pss_mb"], 1),
                mb(envoy, "rss_mb"),
                report.fmt(envoy["private_by_mapping_mb"]["binary"], 1) if envoy else "–",
                report.fmt(sum(a["uss_mb"] for a in apps), 1),
                ", ".join(a["cmd"] for a in apps),
            ]
        )
    uss = [r["sidecar_uss_mb"] for r in rows if r["sidecar_uss_mb"] is not None]
    summary = f"{report.median(uss):.1f} / {max(uss):.1f}" if uss else "–"
    lines.append(["**median / max**", summary, "", "", "", "", "", "", ""])
    header = [
        "pod",
        "sidecar USS MB (target ≤ 30)",
        "Envoy USS",
        "agent USS",
        "sidecar PSS",
        "Envoy RSS",
        "Envoy private in its binary",
        "app USS MB",
        "app",
    ]
    return f"{label}:\n\n" + report.table(header, lines)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.pod_memory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait after the pods are ready")
    ap.add_argument("--traffic-seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="req/s from the client pod to web")
    ap.add_argument("--keep-state", action="store_true")
    args = ap.parse_args()
    if not 0 <= args.traffic_seconds <= 60 or not 0 < args.rate <= 2000:
        ap.error("keep --traffic-seconds in 0..60 and --rate in (0, 2000]")
    loadgen.build()
    started = report.now()
    with Mesh(keep_state=args.keep_state) as mesh:
        mesh.apply(DEMO.read_text())
        time.sleep(args.settle)
        report.print_header(
            {"workload": "examples/demo.yaml", "traffic": f"{args.rate:g} req/s to web for {args.traffic_seconds:g} s"}
        )
        idle = snapshot(mesh)
        client = mesh.pod_of("client")["name"]
        target = loadgen.Target(mesh.cluster_ip("web"), 80, "web", tuple(mesh.exec_argv(client)))
        run = loadgen.run(target, args.rate, 32, args.traffic_seconds, 1.0) if args.traffic_seconds else None
        time.sleep(1.0)
        loaded = snapshot(mesh)
        control = mesh_processes(mesh)
    saved = report.save(
        "pod_memory",
        {
            "settings": vars(args),
            "idle": idle,
            "after_traffic": loaded,
            "traffic": None if run is None else run.__dict__,
            "mesh_processes": control,
        },
        started,
    )
    print(render("idle", idle))
    print()
    print(render("after traffic", loaded))
    print("\nmesh processes (shared by all pods):\n")
    print(
        report.table(
            ["process", "USS MB", "RSS MB"],
            [[c["cmd"], report.fmt(c["uss_mb"], 1), report.fmt(c["rss_mb"], 1)] for c in control],
        )
    )
    print(f"\nresults: {saved}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
