"""`isthmus addons list|enable|disable`: bundles of functionality a cluster can take on and drop again.

An add-on is a set of Kubernetes-shaped manifests (`Addon.manifests`): `enable`
applies them (create or update, so enabling twice changes nothing) and waits for its
deployments; `disable` deletes them and waits for their pods to go, so nothing of the
add-on is left running or configured. Whether a cluster has an add-on is read from
the objects themselves, never kept apart. Another add-on (prometheus, dashboards) is
one more `Addon` in `ADDONS`.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from isthmus.cli import render
from isthmus.cli.commands import call_daemon, state_paths
from isthmus.cli.errors import CliError
from isthmus.model.manifests import dump_resource, parse_manifests
from isthmus.model.resources import Deployment, Namespace, Resource, resource_key
from isthmus.platform.local.paths import StatePaths
from isthmus.viz.tracing.manifests import tracing_manifests

Key = tuple[str, str, str]
Status = Literal["enabled", "starting", "partly enabled", "disabled"]
# `get` kinds holding what an add-on may consist of, and what else may share its namespace.
KINDS = {
    "Namespace": "namespaces",
    "ServiceAccount": "serviceaccounts",
    "Deployment": "deployments",
    "Service": "services",
}
SHARED_NAMESPACE_KINDS = ("deployments", "services", "serviceaccounts", "secrets")
POLL = 0.25


@dataclass(frozen=True)
class Addon:
    name: str
    summary: str
    manifests: Callable[[], str]
    """Everything the add-on is in a cluster. A Namespace among them may be shared with other
    add-ons or the user's own objects: `disable` deletes it only when nothing else is in it."""
    next_step: str = ""
    """What to try once it is enabled."""

    def objects(self) -> list[Resource]:
        return parse_manifests(self.manifests(), f"the {self.name} add-on")

    def own(self) -> list[Resource]:
        """What `disable` deletes in any case: all but the namespaces."""
        return [r for r in self.objects() if not isinstance(r, Namespace)]


ADDONS: Mapping[str, Addon] = {
    "tracing": Addon(
        "tracing",
        "an OTLP trace collector; sidecars send it a span per HTTP/gRPC request (see `isthmus traces`)",
        tracing_manifests,
        "send a request through the mesh, then: isthmus traces",
    ),
}
COMING = ("prometheus", "dashboards")


def addon_named(name: str) -> Addon:
    found = ADDONS.get(name)
    if found is None:
        coming = f"; {' and '.join(COMING)} are to come" if name in COMING else ""
        raise CliError(f'unknown add-on "{name}" (add-ons: {", ".join(ADDONS)}{coming})')
    return found


# ---------------------------------------------------------------- what a cluster has (pure)


@dataclass(frozen=True)
class ClusterObjects:
    """Which objects a cluster has, and which of its deployments are ready."""

    present: frozenset[Key]
    ready: Mapping[Key, bool]


def addon_status(addon: Addon, found: ClusterObjects) -> Status:
    own = [resource_key(r) for r in addon.own()]
    have = [k for k in own if k in found.present]
    if not have:
        return "disabled"
    if len(have) < len(own):
        return "partly enabled"
    deployments = [resource_key(r) for r in addon.own() if isinstance(r, Deployment)]
    return "enabled" if all(found.ready.get(k, False) for k in deployments) else "starting"


def namespace_in_use(items: Mapping[str, Sequence[Mapping[str, Any]]], namespace: str) -> bool:
    """Whether anything of the `get` answers by kind is in `namespace` (its default service account aside)."""
    for kind, listed in items.items():
        for item in listed:
            meta = item.get("metadata", {})
            if meta.get("namespace") == namespace and not (kind == "serviceaccounts" and meta.get("name") == "default"):
                return True
    return False


def render_list(rows: Sequence[tuple[str, str, Status]]) -> str:
    """rows: (add-on, cluster, status)."""
    return render.table(
        ["NAME", "CLUSTER", "STATUS", "DESCRIPTION"],
        [[name, cluster, status, ADDONS[name].summary] for name, cluster, status in rows],
    )


# ---------------------------------------------------------------- fetching


def clusters(paths: StatePaths, cluster: str | None) -> list[str]:
    """`cluster` if the mesh has it, else every cluster (for `cluster` None)."""
    names = [str(c["name"]) for c in call_daemon(paths, {"op": "status"})["clusters"]]
    if cluster is None:
        return names
    if cluster not in names:
        raise CliError(f"no cluster named {cluster!r} (clusters: {', '.join(names) or 'none'})")
    return [cluster]


def cluster_objects(paths: StatePaths, cluster: str) -> ClusterObjects:
    present: set[Key] = set()
    ready: dict[Key, bool] = {}
    for kind, plural in KINDS.items():
        for item in call_daemon(paths, {"op": "get", "kind": plural, "cluster": cluster})["items"]:
            meta = item["metadata"]
            key = (kind, "" if kind == "Namespace" else meta.get("namespace", "default"), meta["name"])
            present.add(key)
            if kind == "Deployment":
                status = item.get("status", {})
                ready[key] = status.get("readyReplicas", 0) == status.get("replicas", -1) >= 1
    return ClusterObjects(frozenset(present), ready)


def _pods_of(paths: StatePaths, cluster: str, addon: Addon) -> list[str]:
    deployments = {(r.meta.namespace, r.meta.name) for r in addon.own() if isinstance(r, Deployment)}
    pods = call_daemon(paths, {"op": "get", "kind": "pods", "cluster": cluster})["items"]
    return [p["name"] for p in pods if (p["namespace"], p["deployment"]) in deployments]


# ---------------------------------------------------------------- commands


def list_(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    rows: list[tuple[str, str, Status]] = []
    for cluster in clusters(paths, args.cluster):
        found = cluster_objects(paths, cluster)
        rows += [(addon.name, cluster, addon_status(addon, found)) for addon in ADDONS.values()]
    if args.output == "json":
        print(render.as_json({"addons": [{"name": n, "cluster": c, "status": s} for n, c, s in rows]}))
    else:
        print(render_list(rows))
    return 0


def _timeout(args: argparse.Namespace) -> float:
    if not 0 < args.timeout <= 3600:
        raise CliError(f"--timeout must be more than 0 and at most 3600 seconds, got {args.timeout:g}")
    return float(args.timeout)


def enable(args: argparse.Namespace) -> int:
    addon = addon_named(args.name)
    _timeout(args)
    paths = state_paths(args)
    for cluster in clusters(paths, args.cluster):
        source = f"isthmus addons enable {addon.name}"
        resp = call_daemon(paths, {"op": "apply", "cluster": cluster, "text": addon.manifests(), "source": source})
        for line in resp["results"]:
            print(f"{cluster}: {line}")
        _wait(
            functools.partial(_is_enabled, paths, cluster, addon),
            args.timeout,
            f"the {addon.name} add-on of cluster {cluster} is not ready after {args.timeout:.0f}s"
            f" (see `isthmus get pods -A --cluster {cluster}` and `isthmus logs POD --cluster {cluster}`)",
        )
        print(f"{addon.name} is enabled in cluster {cluster}")
    if addon.next_step:
        print(f"\nNext: {addon.next_step}")
    return 0


def disable(args: argparse.Namespace) -> int:
    addon = addon_named(args.name)
    _timeout(args)
    paths = state_paths(args)
    for cluster in clusters(paths, args.cluster):
        if addon_status(addon, cluster_objects(paths, cluster)) == "disabled":
            print(f"{addon.name} is not enabled in cluster {cluster}")
            continue
        source = f"isthmus addons disable {addon.name}"
        own = "---\n".join(_manifest_of(r) for r in addon.own())
        req = {"op": "delete", "cluster": cluster, "text": own, "source": source, "ignore_not_found": True}
        results = list(call_daemon(paths, req)["results"])
        for ns in (r for r in addon.objects() if isinstance(r, Namespace)):
            items = {
                k: call_daemon(paths, {"op": "get", "kind": k, "cluster": cluster})["items"]
                for k in SHARED_NAMESPACE_KINDS
            }
            if not namespace_in_use(items, ns.meta.name):
                req = {
                    "op": "delete",
                    "cluster": cluster,
                    "text": _manifest_of(ns),
                    "source": source,
                    "ignore_not_found": True,
                }
                results += call_daemon(paths, req)["results"]
        for line in results:
            print(f"{cluster}: {line}")
        _wait(
            functools.partial(_is_gone, paths, cluster, addon),
            args.timeout,
            f"pods of the {addon.name} add-on are still running in cluster {cluster} after {args.timeout:.0f}s",
        )
        print(f"{addon.name} is disabled in cluster {cluster}")
    return 0


def _is_enabled(paths: StatePaths, cluster: str, addon: Addon) -> bool:
    return addon_status(addon, cluster_objects(paths, cluster)) == "enabled"


def _is_gone(paths: StatePaths, cluster: str, addon: Addon) -> bool:
    return not _pods_of(paths, cluster, addon)


def _manifest_of(r: Resource) -> str:
    """A manifest that names `r` (what a delete needs)."""
    return render.as_yaml(dump_resource(r))


def _wait(done: Callable[[], bool], timeout: float, failure: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise CliError(failure)
        time.sleep(POLL)


def register(sub: Any) -> None:
    names = ", ".join(ADDONS)
    p = sub.add_parser(
        "addons",
        help="list, enable or disable add-ons (tracing)",
        description=f"Add-ons are bundles a cluster can take on and drop again: {names}"
        f" ({' and '.join(COMING)} are to come). Enabling twice changes nothing; disabling removes"
        " everything the add-on added. Without --cluster, every cluster.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = actions.add_parser("list", help="each add-on and whether each cluster has it")
    a.add_argument("--cluster", "-c", help="only this cluster (default: every cluster)")
    a.add_argument("-o", "--output", choices=["table", "json"], default="table")
    a.set_defaults(func=list_)

    for action, func, verb in (("enable", enable, "add"), ("disable", disable, "remove")):
        a = actions.add_parser(action, help=f"{verb} an add-on ({names})")
        a.add_argument("name", metavar="NAME", help=f"the add-on: {names}")
        a.add_argument("--cluster", "-c", help="only this cluster (default: every cluster)")
        a.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it (default 60)")
        a.set_defaults(func=func)
