"""`isthmus traces`: the latest traces the tracing add-on's collectors hold, with their spans.

Fetching (each cluster's collector, over the Unix socket in its pod's directory) is
apart from the pure `render_table` and `render_json`; joining the clusters' spans
into traces is `isthmus.viz.tracing.queries`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from isthmus.cli import render
from isthmus.cli.addons import clusters
from isthmus.cli.commands import call_daemon, state_paths
from isthmus.cli.errors import CliError
from isthmus.model.resources import TRACE_COLLECTOR_NAMESPACE
from isthmus.platform.local import rpc
from isthmus.platform.local.paths import StatePaths
from isthmus.viz.tracing.collector import MAX_LIMIT, QUERY_OP
from isthmus.viz.tracing.manifests import COLLECTOR, QUERY_SOCKET
from isthmus.viz.tracing.queries import (
    Trace,
    assemble,
    cluster_of,
    failed,
    http_status_of,
    pod_of,
    request_of,
    service_of,
    trace_json,
)
from isthmus.viz.tracing.spans import Span

HEADERS = ["TRACE", "SPAN", "SERVICE", "POD", "CLUSTER", "DURATION", "STATUS"]
DEFAULT_LIMIT = 10
# Which sidecar reported a span: the caller's (outbound) or the callee's (inbound).
DIRECTION = {"client": "out", "server": "in"}
QUERY_TIMEOUT = 10.0
# A request line longer than this is cut in the table (-o json has it whole).
MAX_REQUEST = 60
DESCRIPTION = f"""\
Show the latest traces that the tracing add-on's collectors hold (enable it with
`isthmus addons enable tracing`), newest first, each with its spans as a tree:
the client's sidecar (outbound) above the server's sidecar (inbound) it called.
Every sidecar reports its spans to its own cluster's collector; without --cluster
the spans of every cluster are joined, so a request that crossed clusters shows
as one trace. The gateway it crossed forwards encrypted bytes and reports no span:
the inbound span is marked with the cluster the request came from.

SERVICE is the workload that reported the span (<deployment>.<namespace>);
DURATION is the time that sidecar spent on the request; STATUS the HTTP (or gRPC)
status, with "error" where Envoy saw one. Collectors keep the latest spans in
memory only (up to {MAX_LIMIT} traces can be asked for)."""


@dataclass(frozen=True)
class TracesOptions:
    """`isthmus traces` as asked, checked."""

    cluster: str | None
    limit: int
    trace_id: str | None
    output: Literal["table", "json"]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TracesOptions:
        if not 1 <= args.limit <= MAX_LIMIT:
            raise CliError(f"--limit must be from 1 to {MAX_LIMIT}, got {args.limit}")
        trace_id = args.trace.lower() if args.trace else None
        if trace_id is not None and (len(trace_id) != 32 or any(c not in "0123456789abcdef" for c in trace_id)):
            raise CliError(f"--trace must be a trace id of 32 hex digits, got {args.trace!r}")
        return cls(args.cluster, args.limit, trace_id, args.output)


@dataclass(frozen=True)
class Fetched:
    spans: tuple[Span, ...]
    queried: tuple[str, ...]
    """Clusters whose collector answered."""
    unreachable: Mapping[str, str]
    """Cluster -> why its collector could not be asked."""


# ---------------------------------------------------------------- fetch


def fetch(paths: StatePaths, opts: TracesOptions) -> Fetched:
    names = clusters(paths, opts.cluster)
    collectors = {name: _collector_dir(paths, name) for name in names}
    traced = {name: d for name, d in collectors.items() if d is not None}
    if not traced:
        where = f"cluster {opts.cluster}" if opts.cluster else f"any cluster ({', '.join(names)})"
        raise CliError(
            f"tracing is not enabled in {where}: `isthmus addons enable tracing"
            f"{' --cluster ' + opts.cluster if opts.cluster else ''}` runs a collector"
        )
    spans: list[Span] = []
    queried: list[str] = []
    unreachable: dict[str, str] = {}
    request: dict[str, Any] = {"op": QUERY_OP, "limit": opts.limit}
    if opts.trace_id:
        request["trace_id"] = opts.trace_id
    for name, directory in sorted(traced.items()):
        try:
            with _socket_in(directory) as socket:
                resp = rpc.call(socket, request, timeout=QUERY_TIMEOUT)
            if not resp.get("ok"):
                raise rpc.RpcError(str(resp.get("error")))
            spans += [Span.from_json(s) for s in resp["spans"]]
            queried.append(name)
        except (OSError, rpc.RpcError, ValueError, KeyError, TypeError) as e:
            unreachable[name] = str(e) or type(e).__name__
    return Fetched(tuple(spans), tuple(queried), unreachable)


def _collector_dir(paths: StatePaths, cluster: str) -> Path | None:
    """The pod directory of the cluster's running collector, or None when the add-on is off."""
    pods = call_daemon(paths, {"op": "get", "kind": "pods", "cluster": cluster})["items"]
    running = [
        p
        for p in pods
        if p["namespace"] == TRACE_COLLECTOR_NAMESPACE and p["deployment"] == COLLECTOR and p["phase"] == "Running"
    ]
    if not running:
        return None
    return Path(call_daemon(paths, {"op": "pod", "name": running[0]["name"], "cluster": cluster})["dir"])


@contextlib.contextmanager
def _socket_in(directory: Path) -> Iterator[Path]:
    """The collector's socket by a path short enough for a Unix socket address (at most 107
    bytes), whatever the length of the state directory: through an open descriptor of its directory."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        yield Path(f"/proc/self/fd/{fd}/{QUERY_SOCKET}")
    finally:
        os.close(fd)


# ---------------------------------------------------------------- render (pure)


def _duration(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.1f}ms" if ms < 1000 else f"{ms / 1000:.2f}s"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_REQUEST else text[: MAX_REQUEST - 1] + "…"


def render_table(traces: Sequence[Trace]) -> str:
    if not traces:
        return "no traces yet (spans reach the collector about a second after a request ends)"
    rows: list[list[object]] = []
    for t in traces:
        for i, ts in enumerate(t.spans):
            s = ts.span
            label = "  " * ts.depth + f"{DIRECTION.get(s.kind, s.kind)} {_cut(request_of(s))}"
            if ts.crossed_from:
                label += f" (from {ts.crossed_from}, through {cluster_of(s)}'s gateway)"
            status = http_status_of(s) or "-"
            if failed(s):
                status = f"{status} error" if status != "-" else "error"
            rows.append(
                [
                    # A blank (not "<none>") under the trace id: the rows below belong to it.
                    t.trace_id if i == 0 else " ",
                    label,
                    service_of(s),
                    pod_of(s),
                    cluster_of(s),
                    _duration(s.duration_ns),
                    status,
                ]
            )
    return render.table(HEADERS, rows)


def render_json(traces: Sequence[Trace], fetched: Fetched) -> str:
    return render.as_json(
        {
            "traces": [trace_json(t) for t in traces],
            "clusters": list(fetched.queried),
            "unreachable": dict(fetched.unreachable),
        }
    )


# ---------------------------------------------------------------- command


def traces(args: argparse.Namespace) -> int:
    opts = TracesOptions.from_args(args)
    fetched = fetch(state_paths(args), opts)
    found = assemble(fetched.spans, opts.limit)
    for name, why in sorted(fetched.unreachable.items()):
        print(f"isthmus: warning: the trace collector of cluster {name} could not be read: {why}", file=sys.stderr)
    if opts.trace_id and not found and not fetched.unreachable:
        raise CliError(f"no trace {opts.trace_id} in the collectors of {', '.join(fetched.queried)}")
    print(render_json(found, fetched) if opts.output == "json" else render_table(found))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "traces",
        help="show the latest traces (needs the tracing add-on)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cluster", "-c", help="only this cluster's collector (default: every cluster's, joined)")
    p.add_argument("--limit", "-l", type=int, default=DEFAULT_LIMIT, help=f"how many traces (default {DEFAULT_LIMIT})")
    p.add_argument("--trace", "-t", metavar="ID", help="only the trace with this id")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=traces)
