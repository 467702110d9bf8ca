"""Latency the two sidecars add at fixed rates, and the highest rate each path sustains.

Paths, all to one backend replica (a static Envoy direct_response by default, so
the proxies' cost is what shows; `--backend whoami` uses the Python sample app):

- direct: lg -> backend, on the host's loopback;
- envoy-pair: lg -> Envoy A -> HTTP/2 -> Envoy B -> backend (static config, loopback);
- envoy-pair-mtls: the same pair with mutual TLS 1.3 (P-256, SPIFFE SAN checks) between A and B;
- mesh: lg in the meshed client pod -> web's cluster IP -> both sidecars -> web pod;
- pod-network: lg in an un-meshed pod -> an un-meshed backend pod (the mesh's
  veth/bridge network without sidecars, to split network from proxy cost).

Rounds interleave the paths (rotating their order); figures are medians over rounds.
The throughput search runs in the first --max-rounds rounds.

    .venv/bin/python -m bench.sidecar_latency [--rounds 10] [--backend envoy|whoami]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench import envoys, loadgen, report
from bench.certs import make_pair_certs
from bench.latency_summary import render, summarize
from bench.mesh import Mesh

WORK = Path(__file__).resolve().parent / ".build" / "sidecar-latency"
POD_PORT = 8080
POD_ADMIN = 9901
P90_LIMIT_US = 10_000.0
"""A probe rate is sustained if its p90 (timed from the due time) stays under this: a
backlog that builds up for more than a tenth of the run pushes p90 far past it, while
a neighbour's stall that hits a few requests does not fail the rate."""


@dataclass
class PathUnderTest:
    name: str
    target: loadgen.Target
    served: Callable[[], int] | None
    """The backend's count of 2xx answers (lg does not check statuses); None: cannot tell."""
    proxies: Callable[[], list[psutil.Process]] = field(default=lambda: [])


def backend_argv(kind: str, config: Path, bind: str, port: int) -> list[str]:
    if kind == "envoy":
        return envoys.envoy_argv(config)
    return [sys.executable, "-m", "isthmus.apps.whoami", "--port", str(port), "--bind", bind]


def manifest(kind: str, pod_config: Path) -> str:
    command = backend_argv(kind, pod_config, "0.0.0.0", POD_PORT)
    command[0] = Path(command[0]).name  # the pod's PATH starts with the venv's bin

    def deployment(name: str, cmd: list[str], meshed: bool, port: bool) -> dict[str, Any]:
        container: dict[str, Any] = {"name": "main", "image": "bench", "command": cmd}
        if port:
            container["ports"] = [{"name": "http", "containerPort": POD_PORT}]
        meta: dict[str, Any] = {"labels": {"app": name}}
        if not meshed:
            meta["annotations"] = {"isthmus.io/inject": "disabled"}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": meta, "spec": {"containers": [container]}},
            },
        }

    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    sleep = ["sleep", "infinity"]
    docs = [
        deployment("web", command, True, True),
        service,
        deployment("client", sleep, True, False),
        deployment("bare-web", command, False, True),
        deployment("bare-client", sleep, False, False),
    ]
    return yaml.safe_dump_all(docs, sort_keys=False)


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def measure(path: PathUnderTest, rate: float, conns: int, seconds: float, warmup: float) -> dict[str, Any]:
    before = path.served() if path.served else None
    procs = path.proxies()
    cpu0 = cpu_seconds(procs)
    run = loadgen.run(path.target, rate, conns, seconds, warmup)
    cpu1 = cpu_seconds(procs)
    after = path.served() if path.served else None
    verified = None if before is None or after is None else after - before >= run.total
    return {
        **asdict(run),
        "completed": run.completed,
        "verified": verified,
        "proxy_cpu_us_per_req": (cpu1 - cpu0) / run.total * 1e6 if procs and run.total else None,
    }


def max_rate(path: PathUnderTest, lo: float, hi: float, steps: int, conns: int) -> tuple[float, list[dict[str, Any]]]:
    """Bisect (in log scale) for the highest rate whose p90 stays under P90_LIMIT_US."""
    probes: list[dict[str, Any]] = []

    def sustained(rate: float) -> bool:
        r = measure(path, rate, conns, 2.0, 0.5)
        ok = bool(r["completed"] and r["p90"] <= P90_LIMIT_US and r["verified"] is not False)
        probes.append({"rate": rate, "ok": ok, **{q: r[q] for q in ("p50", "p90", "p99")}, "verified": r["verified"]})
        return ok

    if not sustained(lo):
        return 0.0, probes
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        if sustained(mid):
            lo = mid
        else:
            hi = mid
    return lo, probes


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sidecar_latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--rates", default="500,2000")
    ap.add_argument("--seconds", default="8,5", help="measured seconds per fixed-rate run, one per rate")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--conns", type=int, default=8, help="lg connections for the fixed-rate runs")
    ap.add_argument("--max-conns", type=int, default=32, help="lg connections for the throughput search")
    ap.add_argument("--max-hi", type=float, default=40000.0, help="upper bound of the throughput search")
    ap.add_argument("--max-steps", type=int, default=7)
    ap.add_argument("--max-rounds", type=int, default=5, help="rounds that also search for the maximum rate")
    ap.add_argument("--no-max", action="store_true", help="skip the throughput search")
    ap.add_argument("--backend", choices=["envoy", "whoami"], default="envoy")
    ap.add_argument("--keep-state", action="store_true", help="keep the mesh's state dir (logs) afterwards")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    seconds = [float(x) for x in args.seconds.split(",")]
    if len(seconds) != len(rates) or not all(1 <= x <= 60 for x in seconds):
        ap.error("--seconds needs one value per rate, each 1..60")
    if not 1 <= args.rounds <= 30 or args.max_hi > 40000:
        ap.error("keep --rounds in 1..30 and --max-hi ≤ 40000 (lg's per-connection queue)")
    args.seconds_by_rate = dict(zip(rates, seconds, strict=True))
    loadgen.build()
    WORK.mkdir(parents=True, exist_ok=True)
    port, admin, a_port, b_port, ta_port, tb_port = envoys.free_ports(6)
    host_cfg = envoys.write_config(WORK / "backend-host.json", envoys.backend_config("127.0.0.1", port, admin))
    pod_cfg = envoys.write_config(WORK / "backend-pod.json", envoys.backend_config("0.0.0.0", POD_PORT, POD_ADMIN))
    a_cfg, b_cfg = envoys.pair_configs(a_port, b_port, port)
    ta_cfg, tb_cfg = envoys.pair_configs(ta_port, tb_port, port, make_pair_certs())
    procs = [envoys.start(backend_argv(args.backend, host_cfg, "127.0.0.1", port), WORK / "backend.log")]
    try:
        for name, cfg in (("a", a_cfg), ("b", b_cfg), ("a-mtls", ta_cfg), ("b-mtls", tb_cfg)):
            procs.append(
                envoys.start(envoys.envoy_argv(envoys.write_config(WORK / f"{name}.json", cfg)), WORK / f"{name}.log")
            )
        host = HostSide(port, admin, a_port, ta_port, procs[1:3], procs[3:5])
        with Mesh(keep_state=args.keep_state) as mesh:
            return run(args, mesh, rates, host, pod_cfg)
    finally:
        for p in procs:
            envoys.stop(p)


@dataclass(frozen=True)
class HostSide:
    """What runs on the host's loopback: the backend and the two Envoy pairs."""

    backend_port: int
    admin_port: int
    pair_port: int
    mtls_pair_port: int
    pair: list[subprocess.Popen[bytes]]
    mtls_pair: list[subprocess.Popen[bytes]]


def run(args: argparse.Namespace, mesh: Mesh, rates: list[float], host: HostSide, pod_cfg: Path) -> int:
    for p in (host.backend_port, host.pair_port, host.mtls_pair_port):
        envoys.wait_ok(f"http://127.0.0.1:{p}/")
    mesh.apply(manifest(args.backend, pod_cfg))
    web, client = mesh.pod_of("web"), mesh.pod_of("client")
    bare_web, bare_client = mesh.pod_of("bare-web"), mesh.pod_of("bare-client")
    vip = mesh.cluster_ip("web")
    sidecars = mesh.pod_processes()
    envoy_backend = args.backend == "envoy"

    def host_served() -> int:
        url = f"http://127.0.0.1:{host.admin_port}/stats?filter=^{envoys.BACKEND_STAT}$"
        return envoys.parse_counter(envoys.http_get(url)[1], envoys.BACKEND_STAT)

    def pod_served(pod: str) -> Callable[[], int]:
        def served() -> int:
            url = f"http://127.0.0.1:{POD_ADMIN}/stats?filter=^{envoys.BACKEND_STAT}$"
            out = mesh.cli("exec", pod, "--", "curl", "-s", "-m", "5", url)
            return envoys.parse_counter(out, envoys.BACKEND_STAT)

        return served

    def mesh_proxies() -> list[psutil.Process]:
        return [p for pod in (client["name"], web["name"]) if (p := sidecars[pod].envoy) is not None]

    def procs_of(pair: list[subprocess.Popen[bytes]]) -> Callable[[], list[psutil.Process]]:
        return lambda: [psutil.Process(p.pid) for p in pair]

    served_on_host = host_served if envoy_backend else None
    paths = [
        PathUnderTest("direct", loadgen.Target("127.0.0.1", host.backend_port, "backend"), served_on_host),
        PathUnderTest(
            "envoy-pair", loadgen.Target("127.0.0.1", host.pair_port, "backend"), served_on_host, procs_of(host.pair)
        ),
        PathUnderTest(
            "envoy-pair-mtls",
            loadgen.Target("127.0.0.1", host.mtls_pair_port, "backend"),
            served_on_host,
            procs_of(host.mtls_pair),
        ),
        PathUnderTest(
            "mesh",
            loadgen.Target(vip, 80, "web", tuple(mesh.exec_argv(client["name"]))),
            pod_served(web["name"]) if envoy_backend else None,
            mesh_proxies,
        ),
        PathUnderTest(
            "pod-network",
            loadgen.Target(bare_web["ip"], POD_PORT, "bare-web", tuple(mesh.exec_argv(bare_client["name"]))),
            pod_served(bare_web["name"]) if envoy_backend else None,
        ),
    ]
    check = mesh.cli("exec", client["name"], "--", "curl", "-s", "-m", "5", "-w", " %{http_code}", "http://web/")
    if not check.endswith(" 200"):
        raise RuntimeError(f"the mesh path does not answer 200: {check!r}")
    names = [p.name for p in paths]
    header = {
        "backend": args.backend,
        "rounds": args.rounds,
        "fixed-rate runs": ", ".join(f"{r:g}/s for {t:g} s" for r, t in args.seconds_by_rate.items())
        + f", after {args.warmup:g} s warm-up, {args.conns} connections",
        "paths": ", ".join(names),
    }
    report.print_header(header)
    started = report.now()
    load_start = Path("/proc/loadavg").read_text().strip()
    runs: list[dict[str, Any]] = []
    maxima: dict[str, list[float]] = {n: [] for n in names}
    searches: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        order = paths[rnd % len(paths) :] + paths[: rnd % len(paths)]
        for rate in rates:
            for p in order:
                r = measure(p, rate, args.conns, args.seconds_by_rate[rate], args.warmup)
                runs.append({"round": rnd, "path": p.name, **r})
                print(
                    f"round {rnd + 1} {p.name:12} {rate:6.0f}/s p50 {r['p50']:8.0f} p99 {r['p99']:8.0f} "
                    f"p99.9 {r['p999']:8.0f} µs verified={r['verified']}",
                    file=sys.stderr,
                    flush=True,
                )
        if args.no_max or rnd >= args.max_rounds:
            continue
        for p in order:
            best, probes = max_rate(p, 500.0, args.max_hi, args.max_steps, args.max_conns)
            maxima[p.name].append(best)
            searches.append({"round": rnd, "path": p.name, "max_rate": best, "probes": probes})
            print(f"round {rnd + 1} {p.name:12} max sustained {best:8.0f}/s", file=sys.stderr, flush=True)
    summary = summarize(runs, names, rates)
    tput = {n: report.median(v) for n, v in maxima.items()}
    saved = report.save(
        "sidecar_latency",
        {
            "settings": vars(args),
            "loadavg": [load_start, Path("/proc/loadavg").read_text().strip()],
            "summary": summary,
            "max_rate": tput,
            "runs": runs,
            "max_searches": searches,
        },
        started,
    )
    print(render(summary, tput, names, rates))
    print(f"\nresults: {saved}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
