"""`isthmus multicluster`: install and remove a cluster's gateway (links and mirrors come later)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from isthmus.cli import render
from isthmus.cli.commands import call_daemon, state_paths
from isthmus.cli.errors import CliError
from isthmus.model.mesh import GATEWAY_NAMESPACE
from isthmus.multicluster.gateway import GATEWAY_DEPLOYMENT, GATEWAY_PORT, PROBE_PATH, PROBE_PORT, gateway_manifests
from isthmus.platform.local.paths import StatePaths

SOURCE = "isthmus multicluster install"


def _gateway_deployment(paths: StatePaths, cluster: str | None) -> dict[str, Any] | None:
    items = call_daemon(paths, {"op": "get", "kind": "deployments", "cluster": cluster})["items"]
    return next(
        (
            d
            for d in items
            if d["metadata"]["name"] == GATEWAY_DEPLOYMENT and d["metadata"].get("namespace") == GATEWAY_NAMESPACE
        ),
        None,
    )


def _cluster_status(paths: StatePaths, cluster: str | None) -> dict[str, Any]:
    clusters = call_daemon(paths, {"op": "status"})["clusters"]
    if cluster is None and len(clusters) == 1:
        found: dict[str, Any] = clusters[0]
        return found
    for c in clusters:
        if c["name"] == cluster:
            return dict(c)
    names = ", ".join(c["name"] for c in clusters)
    raise CliError(
        f"no cluster named {cluster!r} (clusters: {names})" if cluster else f"name one with --cluster ({names})"
    )


def install(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    cluster = _cluster_status(paths, args.cluster)
    resp = call_daemon(
        paths, {"op": "apply", "cluster": cluster["name"], "text": gateway_manifests(), "source": SOURCE}
    )
    print("\n".join(resp["results"]))
    deadline = time.monotonic() + args.timeout
    while True:
        d = _gateway_deployment(paths, cluster["name"])
        if d is not None and d["status"]["readyReplicas"] == d["status"]["replicas"] == 1:
            break
        if time.monotonic() > deadline:
            raise CliError(
                f"the gateway of cluster {cluster['name']} is not ready after {args.timeout:.0f}s"
                f" (see `isthmus get pods -n {GATEWAY_NAMESPACE} --cluster {cluster['name']}`"
                " and `isthmus logs POD --proxy`)"
            )
        time.sleep(0.2)
    ip = cluster["gateway_wan_ip"]
    print(
        render.table(
            ["CLUSTER", "GATEWAY", "MTLS", "PROBE"],
            [[cluster["name"], ip, f"{ip}:{GATEWAY_PORT}", f"http://{ip}:{PROBE_PORT}{PROBE_PATH}"]],
        )
    )
    print(
        f'\nExport a service of {cluster["name"]} by labelling it mirror.isthmus.io/exported: "true";'
        " other clusters' pods reach it through this gateway (see docs/multicluster.md)."
    )
    return 0


def uninstall(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    cluster = _cluster_status(paths, args.cluster)
    if _gateway_deployment(paths, cluster["name"]) is None:
        print(f"no gateway is installed in cluster {cluster['name']}")
        return 0
    # No links exist yet that could depend on the gateway, so --force changes nothing today.
    resp = call_daemon(
        paths,
        {
            "op": "delete",
            "cluster": cluster["name"],
            "text": gateway_manifests(),
            "source": "isthmus multicluster uninstall",
            "ignore_not_found": True,
        },
    )
    print("\n".join(resp["results"]))
    return 0


def register(sub: Any) -> None:
    """The `multicluster` command group, on the top-level subparsers."""
    p = sub.add_parser(
        "multicluster",
        help="connect clusters: install a cluster's gateway",
        description="Connect clusters. Each cluster's gateway is the only thing of it that other clusters"
        " can reach: it forwards mutual-TLS connections from the mesh to the services labelled"
        ' mirror.isthmus.io/exported: "true", and nothing else.',
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("install", help="deploy the cluster's gateway and wait until it is ready")
    a.add_argument("--cluster", "-c", help="which cluster (needed when more than one runs)")
    a.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it (default 120)")
    a.set_defaults(func=install)
    a = actions.add_parser("uninstall", help="remove the cluster's gateway")
    a.add_argument("--cluster", "-c", help="which cluster (needed when more than one runs)")
    a.add_argument("--force", action="store_true", help="remove it even while links depend on it")
    a.set_defaults(func=uninstall)
