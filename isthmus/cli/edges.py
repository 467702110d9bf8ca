"""`isthmus edges`: who talks to whom in the mesh, with the identities each side proved and whether it was mTLS.

Fetching (the cluster's model from the daemon, every sidecar's admin API) is
apart from the pure `build` and `render`, which the tests check against golden files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from isthmus.cli import render as tables
from isthmus.cli.cluster_state import cluster_state
from isthmus.cli.commands import call_daemon, state_paths
from isthmus.cli.errors import CliError
from isthmus.model.index import ClusterState

if TYPE_CHECKING:
    from isthmus.viz.admin import AdminReply, PodRef
    from isthmus.viz.edges import EdgeReport, Peer

LEVELS: Mapping[str, Literal["deploy", "pod"]] = {
    "deploy": "deploy",
    "deployment": "deploy",
    "deployments": "deploy",
    "po": "pod",
    "pod": "pod",
    "pods": "pod",
}
HEADERS = ["SOURCE", "DESTINATION", "SERVICE", "CLIENT-ID", "SERVER-ID", "MTLS", "CONNS", "REQS"]
MTLS_CELL = {"mtls": "yes", "plaintext": "no", "mtls-failed": "failed"}
DESCRIPTION = """\
List who talks to whom: for each source and destination (deployments, or pods),
the service called, the identity the client presented (CLIENT-ID), the identity
the client required of the server and the handshake proved (SERVER-ID), and
whether the connections were mutual TLS. Figures are read from every sidecar's
Envoy and count connections and HTTP requests since that sidecar started.

MTLS is "yes" when the connections were the mesh's mutual TLS, "no" when they
were not (a destination without a sidecar, or a client outside the mesh), and
"failed" when mTLS was required but no handshake completed. Clients without a
sidecar show as the source (unmeshed): the destination's sidecar counts them,
but cannot say who they are. A sidecar that cannot be read is named in a
warning; the edges it would have shown are missing."""


@dataclass(frozen=True)
class EdgesOptions:
    """`isthmus edges` as asked, checked."""

    level: Literal["deploy", "pod"]
    cluster: str | None
    namespace: str | None
    """Edges with either end in it; None for every namespace (-A)."""
    output: Literal["table", "json"]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EdgesOptions:
        level = LEVELS.get(args.level.lower())
        if level is None:
            raise CliError(f'edges between "{args.level}"? use deploy (the default) or pod')
        if args.all_namespaces and args.namespace:
            raise CliError("use either -n NAMESPACE or -A (all namespaces), not both")
        namespace = None if args.all_namespaces else (args.namespace or "default")
        return cls(level, args.cluster, namespace, args.output)


# ---------------------------------------------------------------- fetch


@dataclass(frozen=True)
class Fetched:
    state: ClusterState
    replies: dict[PodRef, AdminReply]


def fetch(args: argparse.Namespace, opts: EdgesOptions) -> Fetched:
    # viz is imported here and in `build`, not at the top: it loads Envoy's protobufs
    # (through xds), which every other command would pay for at start-up.
    from isthmus.viz.admin import PodRef
    from isthmus.viz.admin_local import LocalAdminScraper
    from isthmus.viz.edges import EDGE_PATHS

    paths = state_paths(args)
    state = cluster_state(paths, opts.cluster, opts.namespace)
    cluster = state.settings.name
    listed = call_daemon(paths, {"op": "get", "kind": "pods", "cluster": cluster})["items"]
    netns = {
        PodRef(cluster, p["namespace"], p["name"]): str(p["netns"])
        for p in listed
        if (p.get("sidecar") or {}).get("running") and p.get("netns")
    }
    meshed = [PodRef(cluster, p.namespace, p.name) for p in state.pods if p.injected]
    return Fetched(state, LocalAdminScraper(paths, netns).scrape(meshed, EDGE_PATHS))


# ---------------------------------------------------------------- build, render (pure)


def build(fetched: Fetched, opts: EdgesOptions) -> EdgeReport:
    from isthmus.viz.edges import by_deployment, in_namespace, pod_edges

    report = pod_edges(fetched.state, fetched.replies)
    if opts.level == "deploy":
        report = by_deployment(report)
    return report if opts.namespace is None else in_namespace(report, opts.namespace)


def _name(peer: Peer, namespace: str | None) -> str:
    """Qualified with its namespace unless it is the one asked for."""
    if not peer.namespace or peer.namespace == namespace:
        return peer.name
    return f"{peer.namespace}/{peer.name}"


def render_table(report: EdgeReport, opts: EdgesOptions) -> str:
    rows: list[Sequence[object]] = [
        [
            _name(e.source, opts.namespace),
            _name(e.destination, opts.namespace),
            e.service,
            e.client_id,
            e.server_id,
            MTLS_CELL[e.transport],
            e.connections,
            e.requests,
        ]
        for e in report.edges
    ]
    return tables.table(HEADERS, rows)


def render_json(report: EdgeReport, opts: EdgesOptions, cluster: str) -> str:
    data: dict[str, Any] = {
        "cluster": cluster,
        "level": opts.level,
        "namespace": opts.namespace,
        "edges": [e.as_dict() for e in report.edges],
        "unscraped": [{"namespace": u.pod.namespace, "pod": u.pod.name, "reason": u.reason} for u in report.unscraped],
    }
    return tables.as_json(data)


def warnings(report: EdgeReport) -> list[str]:
    return [
        f"warning: cannot read the sidecar of pod {u.pod} ({u.reason}); edges it would show are missing"
        for u in report.unscraped
    ]


def empty_note(opts: EdgesOptions) -> str:
    where = "in any namespace" if opts.namespace is None else f'with an end in namespace "{opts.namespace}"'
    return f"No edges {where}: no traffic between these workloads since their sidecars started."


# ---------------------------------------------------------------- command


def edges(args: argparse.Namespace) -> int:
    opts = EdgesOptions.from_args(args)
    fetched = fetch(args, opts)
    report = build(fetched, opts)
    for line in warnings(report):
        print(f"isthmus: {line}", file=sys.stderr)
    if opts.output == "json":
        print(render_json(report, opts, fetched.state.settings.name))
    elif report.edges:
        print(render_table(report, opts))
    else:
        print(empty_note(opts), file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `isthmus edges` to the top-level subcommands."""
    p = sub.add_parser(
        "edges",
        help="who talks to whom, with client and server identities and whether it was mTLS",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  isthmus edges\n  isthmus edges pod -n shop\n  isthmus edges -A -o json",
    )
    p.add_argument(
        "level", nargs="?", default="deploy", metavar="deploy|pod", help="what the ends are (default: deploy)"
    )
    p.add_argument("--cluster", "-c", help="which cluster (needed when more than one runs)")
    p.add_argument("--namespace", "-n", help="only edges with an end in this namespace (default: 'default')")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="edges in every namespace")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table", help="table, or json for scripts")
    p.set_defaults(func=edges)
