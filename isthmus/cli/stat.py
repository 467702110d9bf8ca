"""`isthmus stat`: golden metrics (success rate, requests per second, latency percentiles, open
connections) per deployment, pod or service, over a recent window.

Fetching (the cluster's model and deployments from the daemon, the window from the
control plane's traffic collector) is apart from the pure `build` and `render`,
which the tests check against golden files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from isthmus.cli import render as tables
from isthmus.cli.cluster_state import cluster_state
from isthmus.cli.commands import call_daemon, state_paths
from isthmus.cli.durations import DurationError, parse_duration
from isthmus.cli.errors import CliError
from isthmus.model.index import ClusterState
from isthmus.platform.local import rpc

if TYPE_CHECKING:
    from isthmus.viz.golden import Row, Unscraped
    from isthmus.viz.history import Window

Kind = Literal["deploy", "pod", "svc"]
KINDS: Mapping[str, Kind] = {
    "deploy": "deploy",
    "deployment": "deploy",
    "deployments": "deploy",
    "po": "pod",
    "pod": "pod",
    "pods": "pod",
    "svc": "svc",
    "service": "svc",
    "services": "svc",
}
NOUN: Mapping[Kind, str] = {"deploy": "deployment", "pod": "pod", "svc": "service"}
SHORTEST_WINDOW, LONGEST_WINDOW, DEFAULT_WINDOW = 10.0, 600.0, "1m"
HEADERS = ["NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN"]
QUERY_TIMEOUT = 10.0
QUANTILES = (0.5, 0.95, 0.99)
DESCRIPTION = """\
Golden metrics per deployment, pod or service over a recent window (--window,
10s to 10m, default 1m): SUCCESS is the share of HTTP responses that were not
5xx, RPS the HTTP responses per second, LATENCY_P50/P95/P99 the request-time
percentiles, TCP_CONN the connections open now (HTTP and opaque TCP), MESHED the
ready pods with a sidecar out of all pods.

Deployments and pods are measured as servers, by their own sidecars, from every
client (those outside the mesh too, where the pod lets them in). Services are
measured as their clients saw them, by the sidecars of every meshed pod that
called them; that includes the time between the two sidecars.

Each cluster's control plane reads every sidecar every 5 seconds and keeps 10
minutes of readings; right after it (re)starts, windows are shorter than asked.
A sidecar that cannot be read is named in a warning; its figures are missing."""


@dataclass(frozen=True)
class StatOptions:
    """`isthmus stat` as asked, checked."""

    kind: Kind
    name: str | None
    cluster: str | None
    namespace: str | None
    """None for every namespace (-A)."""
    window: float
    """Seconds."""
    output: Literal["table", "json"]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StatOptions:
        kind = KINDS.get(args.kind.lower())
        if kind is None:
            raise CliError(f'stat for "{args.kind}"? use deploy, pod or svc')
        if args.all_namespaces and args.namespace:
            raise CliError("use either -n NAMESPACE or -A (all namespaces), not both")
        try:
            window = parse_duration(args.window, "--window").total_seconds()
        except DurationError as e:
            raise CliError(str(e)) from None
        if not SHORTEST_WINDOW <= window <= LONGEST_WINDOW:
            raise CliError(f"--window {args.window} is out of range: use 10s to 10m (e.g. 10s, 1m, 10m)")
        namespace = None if args.all_namespaces else (args.namespace or "default")
        return cls(kind, args.name, args.cluster, namespace, window, args.output)


# ---------------------------------------------------------------- fetch


@dataclass(frozen=True)
class Fetched:
    state: ClusterState
    deployments: tuple[tuple[str, str], ...]
    """(namespace, name) of every deployment, with or without pods."""
    window: Window
    collector_error: str | None = None


def _query_window(socket_path: Path, cluster: str, seconds: float) -> tuple[Window, str | None]:
    # viz is imported here and in `build`, not at the top: it loads Envoy's protobufs
    # (through xds), which every other command would pay for at start-up.
    from isthmus.viz.collector import QUERY_OP
    from isthmus.viz.history import Window

    try:
        resp = rpc.call(socket_path, {"op": QUERY_OP, "window": seconds}, timeout=QUERY_TIMEOUT)
    except (OSError, rpc.RpcError, ValueError) as e:
        raise CliError(f"cannot reach the control plane of cluster {cluster} ({e}); see `isthmus check`") from None
    if not resp.get("ok"):
        error = str(resp.get("error"))
        if "unknown operation" in error:
            error = "it does not collect traffic yet (restart it: isthmus controlplane restart)"
        raise CliError(f"the control plane of cluster {cluster} cannot answer: {error}")
    return Window.from_dict(cluster, resp["window"]), resp.get("collector_error")


def fetch(args: argparse.Namespace, opts: StatOptions) -> Fetched:
    paths = state_paths(args)
    state = cluster_state(paths, opts.cluster, opts.namespace)
    cluster = state.settings.name
    items = call_daemon(paths, {"op": "get", "kind": "deployments", "cluster": cluster})["items"]
    deployments = tuple((str(d["metadata"].get("namespace") or "default"), str(d["metadata"]["name"])) for d in items)
    window, collector_error = _query_window(paths.controlplane_socket(cluster), cluster, opts.window)
    return Fetched(state, deployments, window, collector_error)


# ---------------------------------------------------------------- build, render (pure)


@dataclass(frozen=True)
class StatReport:
    cluster: str
    kind: Kind
    rows: tuple[Row, ...]
    window: Window
    unscraped: tuple[Unscraped, ...]
    collector_error: str | None = None


def build(fetched: Fetched, opts: StatOptions) -> StatReport:
    """The rows asked for; raises CliError when a name asked for does not exist."""
    from isthmus.viz import golden

    state, window = fetched.state, fetched.window

    def wanted(namespace: str, name: str) -> bool:
        return (opts.namespace is None or namespace == opts.namespace) and (opts.name in (None, name))

    if opts.kind == "deploy":
        rows = golden.deployment_rows(state, window, [d for d in fetched.deployments if wanted(*d)])
    elif opts.kind == "pod":
        rows = golden.pod_rows(state, window, [p for p in state.pods if wanted(p.namespace, p.name)])
    else:
        names = [(s.namespace, s.name) for s in state.services if wanted(s.namespace, s.name)]
        rows = golden.service_rows(state, window, names)
    if opts.name is not None and not rows:
        where = "in any namespace" if opts.namespace is None else f'in namespace "{opts.namespace}"'
        raise CliError(f'{NOUN[opts.kind]} "{opts.name}" not found {where} of cluster {state.settings.name}')
    unscraped = golden.unscraped(window)
    if opts.namespace is not None and opts.kind != "svc":
        unscraped = tuple(u for u in unscraped if u.namespace == opts.namespace)
    return StatReport(state.settings.name, opts.kind, tuple(rows), window, unscraped, fetched.collector_error)


def format_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return "<1ms"
    if value < 1000:
        return f"{value:.0f}ms"
    return f"{value / 1000:.2f}s"


def _cells(row: Row) -> list[object]:
    f = row.figures
    meshed = f"{row.meshed}/{row.pods}"
    if f is None:
        return [meshed, "-", "-", "-", "-", "-", "-"]
    success = "-" if f.success is None else f"{f.success * 100:.2f}%"
    latencies = [format_ms(f.latency_ms(q)) for q in QUANTILES]
    return [meshed, success, f"{f.rps:.1f}rps", *latencies, f.traffic.open]


def render_table(report: StatReport, opts: StatOptions) -> str:
    everywhere = opts.namespace is None
    headers = (["NAMESPACE"] if everywhere else []) + HEADERS
    rows: list[Sequence[object]] = [([r.namespace] if everywhere else []) + [r.name, *_cells(r)] for r in report.rows]
    return tables.table(headers, rows)


def _row_json(row: Row) -> dict[str, Any]:
    f = row.figures
    out: dict[str, Any] = {
        "namespace": row.namespace,
        "name": row.name,
        "meshed": {"ready": row.meshed, "pods": row.pods},
        "unscraped": [{"pod": u.pod, "reason": u.reason} for u in row.unscraped],
    }
    if f is None:
        nothing = ("requests", "failures", "success_rate", "rps", "latency_ms", "tcp")
        return {**out, **dict.fromkeys(nothing)}
    t = f.traffic
    return {
        **out,
        "requests": t.responses,
        "failures": t.failures,
        "success_rate": _round(f.success, 6),
        "rps": _round(f.rps, 3),
        "latency_ms": {f"p{q * 100:g}": _round(f.latency_ms(q), 3) for q in QUANTILES},
        "tcp": {
            "open": t.open,
            "opened": t.opened,
            "read_bytes_per_second": _round(f.bytes_per_second(t.received), 1),
            "write_bytes_per_second": _round(f.bytes_per_second(t.sent), 1),
        },
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def render_json(report: StatReport, opts: StatOptions) -> str:
    from isthmus.viz.golden import VIEWS

    data: dict[str, Any] = {
        "cluster": report.cluster,
        "kind": report.kind,
        "view": VIEWS[report.kind],
        "namespace": opts.namespace,
        "window": {"asked": report.window.asked, "covered": report.window.seconds, "age": report.window.age},
        "rows": [_row_json(r) for r in report.rows],
        "unscraped": [{"namespace": u.namespace, "pod": u.pod, "reason": u.reason} for u in report.unscraped],
    }
    return tables.as_json(data)


def notes(report: StatReport, opts: StatOptions) -> list[str]:
    """What stderr says besides the table: unread sidecars, short windows."""
    out = [
        f"warning: cannot read the sidecar of pod {u.namespace}/{u.pod} ({u.reason}); its figures are missing"
        for u in report.unscraped
    ]
    if report.collector_error:
        out.append(f"warning: the control plane's last reading of the sidecars failed ({report.collector_error})")
    w = report.window
    if w.seconds <= 0:
        out.append(
            "note: the control plane has not read the sidecars twice yet, so there is no window to show;"
            " try again in a few seconds"
        )
    elif w.seconds < w.asked - SHORTEST_WINDOW / 2:
        out.append(
            f"note: figures cover the last {w.seconds:.0f}s only: the control plane began reading the sidecars then"
        )
    return out


def empty_note(opts: StatOptions) -> str:
    where = "in any namespace" if opts.namespace is None else f'in namespace "{opts.namespace}"'
    return f"No {NOUN[opts.kind]}s {where}."


# ---------------------------------------------------------------- command


def stat(args: argparse.Namespace) -> int:
    opts = StatOptions.from_args(args)
    fetched = fetch(args, opts)
    report = build(fetched, opts)
    for line in notes(report, opts):
        print(f"isthmus: {line}", file=sys.stderr)
    if opts.output == "json":
        print(render_json(report, opts))
    elif report.rows:
        print(render_table(report, opts))
    else:
        print(empty_note(opts), file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `isthmus stat` to the top-level subcommands."""
    p = sub.add_parser(
        "stat",
        help="golden metrics (success, RPS, latency, connections) per deployment, pod or service",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  isthmus stat deploy\n  isthmus stat svc api -n shop --window 10s\n"
        "  isthmus stat pods -A -o json",
    )
    p.add_argument("kind", metavar="deploy|pod|svc", help="what to show figures for")
    p.add_argument("name", nargs="?", help="only this one")
    p.add_argument("--cluster", "-c", help="which cluster (needed when more than one runs)")
    p.add_argument("--namespace", "-n", help="namespace (default: 'default')")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument(
        "--window", "-w", default=DEFAULT_WINDOW, help="how far back: 10s to 10m (default 1m), e.g. 10s, 1m, 10m"
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table", help="table, or json for scripts")
    p.set_defaults(func=stat)
