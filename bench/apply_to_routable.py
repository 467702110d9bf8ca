"""How long after `isthmus apply` a meshed pod can call a new service.

Each repetition measures two cases, interleaved:

- new: a Service and its Deployment (one whoami replica) applied together; the
  time until the deployment is ready (process start-up included) and until the
  client pod gets an answer from it;
- service-only: the Deployment applied and ready first, then the Service; the
  time until the client pod gets an answer (the control plane's propagation alone).

A probe in the client pod (bench/routable_probe.py) polls the service by name,
started before the apply. Times count from sending the apply request to the
daemon (what `isthmus apply` sends, without the CLI's start-up).

    .venv/bin/python -m bench.apply_to_routable [--reps 10]
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench import report
from bench.mesh import Mesh, wait_until

PROBE = Path(__file__).resolve().parent / "routable_probe.py"
CLIENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers: [{name: sleep, image: bench, command: [sleep, infinity]}]
"""


def deployment(name: str) -> dict[str, Any]:
    container = {
        "name": "whoami",
        "image": "bench",
        "command": ["python", "-m", "isthmus.apps.whoami", "--port", "8080"],
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


def apply_req(docs: list[dict[str, Any]], op: str = "apply") -> dict[str, Any]:
    req: dict[str, Any] = {"op": op, "cluster": None, "text": yaml.safe_dump_all(docs), "source": "bench"}
    if op == "delete":
        req["ignore_not_found"] = True
    return req


def ready(mesh: Mesh, name: str) -> bool:
    for d in mesh.call({"op": "get", "kind": "deployments", "cluster": None})["items"]:
        if d["metadata"]["name"] == name:
            return bool(d["status"]["readyReplicas"] >= 1)
    return False


def start_probe(mesh: Mesh, client: str, name: str) -> subprocess.Popen[str]:
    argv = mesh.exec_argv(client, "python", str(PROBE), "--name", name, "--expect", f'"pod":"{name}-')
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 30)[0] or proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"the probe in {client} did not start: {proc.stderr.read() if proc.stderr else ''}")
    return proc


def finish_probe(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=45)
    try:
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise RuntimeError(f"the probe gave no result: {out!r} {err!r}") from e
    return result


def rel(t: float | None, t0: float) -> float | None:
    return None if t is None else (t - t0) * 1000


def since_boot(pid: int) -> float:
    """When a process started, in seconds since boot (field 22 of /proc/PID/stat, in clock ticks).

    psutil's create_time adds this to a boot time rounded to whole seconds, which is
    too coarse here; CLOCK_BOOTTIME is the same clock, exact.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_starts(mesh: Mesh, deployment_name: str, boot0: float) -> dict[str, float | None]:
    """When the new pod's agent, Envoy and app processes started, in ms after `boot0`
    (CLOCK_BOOTTIME; the kernel keeps start times in clock ticks: 10 ms resolution)."""
    procs = next((pp for pod, pp in mesh.pod_processes().items() if pod.startswith(f"{deployment_name}-")), None)
    if procs is None:
        return {"agent_start_ms": None, "envoy_start_ms": None, "app_start_ms": None}
    agent = next((a for a in procs.agent if "isthmus.proxy.agent" in a.cmdline()), None)

    def ms(proc: psutil.Process | None) -> float | None:
        return None if proc is None else (since_boot(proc.pid) - boot0) * 1000

    return {
        "agent_start_ms": ms(agent),
        "envoy_start_ms": ms(procs.envoy),
        "app_start_ms": ms(procs.apps[0] if procs.apps else None),
    }


def one_new(mesh: Mesh, client: str, name: str) -> dict[str, Any]:
    probe = start_probe(mesh, client, name)
    boot0 = time.clock_gettime(time.CLOCK_BOOTTIME)
    t0 = time.monotonic()
    mesh.call(apply_req([deployment(name), service(name)]))
    applied = time.monotonic()
    t_ready = None
    deadline = t0 + 30
    while time.monotonic() < deadline:
        if ready(mesh, name):
            t_ready = time.monotonic()
            break
        time.sleep(0.01)
    got = finish_probe(probe)
    return {
        "case": "new",
        "name": name,
        "apply_ms": rel(applied, t0),
        **process_starts(mesh, name, boot0),
        "pods_ready_ms": rel(t_ready, t0),
        "resolved_ms": rel(got["resolved"], t0),
        "first_response_ms": rel(got["first_response"], t0),
        "first_status": got.get("first_status"),
        "routable_ms": rel(got["routable"], t0),
        "attempts": got["attempts"],
        "last_status": got.get("last_status"),
    }


def one_service_only(mesh: Mesh, client: str, name: str) -> dict[str, Any]:
    mesh.call(apply_req([deployment(name)]))
    wait_until(lambda: ready(mesh, name), 60, f"deployment {name} ready")
    time.sleep(1.0)  # let the pod's start-up settle; only the Service is measured
    probe = start_probe(mesh, client, name)
    t0 = time.monotonic()
    mesh.call(apply_req([service(name)]))
    applied = time.monotonic()
    got = finish_probe(probe)
    return {
        "case": "service-only",
        "name": name,
        "apply_ms": rel(applied, t0),
        "resolved_ms": rel(got["resolved"], t0),
        "first_response_ms": rel(got["first_response"], t0),
        "first_status": got.get("first_status"),
        "routable_ms": rel(got["routable"], t0),
        "attempts": got["attempts"],
        "last_status": got.get("last_status"),
    }


def clean(mesh: Mesh, name: str) -> None:
    """Delete a repetition's objects and wait until its pod is gone, so it costs the next one nothing."""
    mesh.call(apply_req([deployment(name), service(name)], op="delete"))

    def gone() -> bool:
        pods = mesh.call({"op": "get", "kind": "pods", "cluster": None})["items"]
        return not any(p["deployment"] == name for p in pods)

    wait_until(gone, 60, f"pods of {name} gone", interval=0.2)


def stats(values: list[float | None]) -> tuple[float, float, int]:
    got = [v for v in values if v is not None]
    return report.median(got), max(got) if got else float("nan"), len(values) - len(got)


MEASURES = [
    ("new", "apply → sidecar agent process started", lambda r: r["agent_start_ms"]),
    ("new", "apply → Envoy process started", lambda r: r["envoy_start_ms"]),
    ("new", "apply → app process started", lambda r: r["app_start_ms"]),
    ("new", "apply → deployment ready", lambda r: r["pods_ready_ms"]),
    ("new", "apply → name resolves", lambda r: r["resolved_ms"]),
    ("new", "apply → routable", lambda r: r["routable_ms"]),
    (
        "new",
        "deployment ready → routable",
        lambda r: (
            None if r["routable_ms"] is None or r["pods_ready_ms"] is None else r["routable_ms"] - r["pods_ready_ms"]
        ),
    ),
    ("service-only", "apply → name resolves", lambda r: r["resolved_ms"]),
    ("service-only", "apply → first HTTP answer", lambda r: r["first_response_ms"]),
    ("service-only", "apply → routable", lambda r: r["routable_ms"]),
]


def render(rows: list[dict[str, Any]]) -> str:
    out = []
    for case, label, get in MEASURES:
        p50, mx, missing = stats([get(r) for r in rows if r["case"] == case])
        n = sum(1 for r in rows if r["case"] == case)
        out.append([case, label, report.fmt(p50), report.fmt(mx), f"{n - missing}/{n}"])
    return report.table(["case", "interval", "p50 ms", "max ms", "n"], out)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.apply_to_routable", description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--keep-state", action="store_true", help="keep the mesh's state dir (logs) afterwards")
    args = ap.parse_args()
    if not 1 <= args.reps <= 50:
        ap.error("--reps must be 1..50")
    rows: list[dict[str, Any]] = []
    started = report.now()
    with Mesh(keep_state=args.keep_state) as mesh:
        mesh.apply(CLIENT)
        client = mesh.pod_of("client")["name"]
        report.print_header({"repetitions": args.reps, "app": "whoami (Python), 1 replica"})
        for i in range(args.reps):
            cases = [("new", one_new), ("service-only", one_service_only)]
            for case, fn in cases if i % 2 == 0 else cases[::-1]:
                name = f"{'rn' if case == 'new' else 'rs'}{i}"
                row = {"rep": i, **fn(mesh, client, name)}
                rows.append(row)
                print(
                    f"rep {i + 1} {case:12} routable {report.fmt(row['routable_ms'])} ms "
                    f"(ready {report.fmt(row.get('pods_ready_ms'))} ms)",
                    file=sys.stderr,
                    flush=True,
                )
                clean(mesh, name)
                if row["routable_ms"] is None and not any(r["routable_ms"] is not None for r in rows[:-1]):
                    raise RuntimeError(
                        f"{name} never became routable from {client} (last answer: {row['last_status']}); "
                        "is the mesh routing at all? See the pods' proxy logs (--keep-state)."
                    )
    summary = {
        f"{case}: {label}": dict(
            zip(("p50_ms", "max_ms", "missing"), stats([get(r) for r in rows if r["case"] == case]), strict=True)
        )
        for case, label, get in MEASURES
    }
    saved = report.save("apply_to_routable", {"settings": vars(args), "summary": summary, "runs": rows}, started)
    print(render(rows))
    print(f"\nresults: {saved}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
