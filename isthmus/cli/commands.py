"""What each `isthmus` command does: fetch from the daemon, then render."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from isthmus.cli import check as checks
from isthmus.cli import render
from isthmus.cli.errors import CliError
from isthmus.platform.local import launcher, rpc
from isthmus.platform.local.paths import StatePaths, default_home
from isthmus.platform.local.pods import pod_argv

KIND_ALIASES = {
    "po": "pods",
    "pod": "pods",
    "pods": "pods",
    "svc": "services",
    "service": "services",
    "services": "services",
    "deploy": "deployments",
    "deployment": "deployments",
    "deployments": "deployments",
    "ns": "namespaces",
    "namespace": "namespaces",
    "namespaces": "namespaces",
    "sa": "serviceaccounts",
    "serviceaccount": "serviceaccounts",
    "serviceaccounts": "serviceaccounts",
}
NAME_RULE = "lower-case letters, digits and '-', starting with a letter, at most 30 characters"


def state_paths(args: argparse.Namespace) -> StatePaths:
    return StatePaths(Path(args.home).expanduser().resolve() if args.home else default_home())


def call_daemon(paths: StatePaths, req: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    try:
        resp = rpc.call(paths.api_socket, req, timeout=timeout)
    except rpc.RpcError as e:
        raise CliError(f"no local mesh is running at {paths.home} (start one with `isthmus up`)") from e
    except OSError as e:
        raise CliError(f"cannot reach the daemon at {paths.api_socket}: {e}") from e
    if not resp.get("ok"):
        raise CliError(str(resp.get("error")))
    return resp


def _progress(msg: str) -> None:
    print(f"• {msg}", file=sys.stderr, flush=True)


def valid_cluster_name(name: str) -> bool:
    return (
        bool(name)
        and len(name) <= 30
        and name[0].isalpha()
        and all(c.islower() or c.isdigit() or c == "-" for c in name)
        and not name.endswith("-")
    )


def up(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    names = [n.strip() for n in args.clusters.split(",")] if args.clusters else []
    for n in names:
        if not valid_cluster_name(n):
            raise CliError(f"cluster name {n!r} is not valid: use {NAME_RULE}")
    if len(set(names)) != len(names):
        raise CliError(f"cluster names repeat in --clusters {args.clusters}")
    if not names and not paths.db.exists():
        names = ["local"]
    try:
        st = launcher.start(paths, names, _progress, getattr(args, "mesh_settings", None))
    except launcher.LaunchError as e:
        raise CliError(str(e)) from e
    clusters = st.get("clusters", [])
    print(
        render.table(
            ["CLUSTER", "POD-NETWORK", "SERVICE-NETWORK", "PODS"],
            [[c["name"], c["pod_cidr"], c["service_cidr"], c["pods"]] for c in clusters],
        )
    )
    print(f"\nThe local mesh is running (state in {paths.home}).")
    print("Next: `isthmus apply -f FILE`, `isthmus get pods`, `isthmus check`. Stop it with `isthmus down`.")
    return 0


def down(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    stopped = launcher.stop(paths, _progress)
    print("the local mesh is stopped" if stopped else "no local mesh was running")
    if args.purge and paths.home.exists():
        shutil.rmtree(paths.home)
        print(f"removed {paths.home}")
    return 0


def status(args: argparse.Namespace) -> int:
    st = call_daemon(state_paths(args), {"op": "status"})
    if args.output == "json":
        print(render.as_json(st))
    else:
        rows = [
            [c["name"], c["pod_cidr"], c["service_cidr"], c["pods"], "running" if c["controlplane"] else "down"]
            for c in st["clusters"]
        ]
        print(render.table(["CLUSTER", "POD-NETWORK", "SERVICE-NETWORK", "PODS", "CONTROL-PLANE"], rows))
    return 0


def _read_manifests(filenames: list[str]) -> list[tuple[str, str]]:
    out = []
    for f in filenames:
        if f == "-":
            out.append(("<stdin>", sys.stdin.read()))
            continue
        try:
            out.append((f, Path(f).read_text()))
        except OSError as e:
            raise CliError(f"cannot read {f}: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise CliError(f"{f} is not UTF-8 text: {e.reason}") from e
    return out


def apply(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    files = _read_manifests(args.filename)
    text = "\n---\n".join(t for _, t in files)
    source = ", ".join(s for s, _ in files)
    resp = call_daemon(
        paths, {"op": "apply", "cluster": args.cluster, "text": text, "source": source, "namespace": args.namespace}
    )
    print("\n".join(resp["results"]))
    if args.wait:
        wait_ready(paths, args.cluster, args.timeout)
    return 0


def wait_ready(paths: StatePaths, cluster: str | None, timeout: float) -> None:
    """Wait until every deployment has all its replicas ready, showing progress."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        items = call_daemon(paths, {"op": "get", "kind": "deployments", "cluster": cluster})["items"]
        pending = [
            f"{d['metadata']['name']} {d['status']['readyReplicas']}/{d['spec'].get('replicas', 1)}"
            for d in items
            if d["status"]["readyReplicas"] != d["spec"].get("replicas", 1)
            or d["status"]["replicas"] != d["spec"].get("replicas", 1)
        ]
        if not pending:
            return
        line = "waiting for " + ", ".join(pending)
        if line != last:
            _progress(line)
            last = line
        if time.monotonic() > deadline:
            raise CliError(
                f"not ready after {timeout:.0f}s: {', '.join(pending)} (see `isthmus get pods` and `isthmus logs POD`)"
            )
        time.sleep(0.2)


def delete(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    files = _read_manifests(args.filename)
    req = {
        "op": "delete",
        "cluster": args.cluster,
        "text": "\n---\n".join(t for _, t in files),
        "source": ", ".join(s for s, _ in files),
        "namespace": args.namespace,
        "ignore_not_found": args.ignore_not_found,
    }
    print("\n".join(call_daemon(paths, req)["results"]))
    return 0


def get(args: argparse.Namespace) -> int:
    kind = KIND_ALIASES.get(args.kind.lower())
    if kind is None:
        raise CliError(
            f'unknown resource type "{args.kind}": use one of pods, services, deployments, namespaces, serviceaccounts'
        )
    items: list[dict[str, Any]] = call_daemon(state_paths(args), {"op": "get", "kind": kind, "cluster": args.cluster})[
        "items"
    ]
    meta: Callable[[dict[str, Any]], dict[str, Any]] = (lambda i: i) if kind == "pods" else (lambda i: i["metadata"])
    if kind not in ("namespaces",) and not args.all_namespaces:
        ns = args.namespace or "default"
        items = [i for i in items if meta(i).get("namespace", "") in (ns, "")]
    if args.name:
        items = [i for i in items if meta(i)["name"] == args.name]
        if not items:
            raise CliError(f'{kind[:-1]} "{args.name}" not found')
    if args.output == "json":
        print(render.as_json(items[0] if args.name else {"items": items}))
    elif args.output == "yaml":
        print(render.as_yaml(items[0] if args.name else {"items": items}), end="")
    else:
        wide = args.output == "wide"
        fn = {"pods": render.pods, "services": render.services, "deployments": render.deployments}.get(
            kind, render.named
        )
        if not items:
            print("No resources found.", file=sys.stderr)
            return 0
        print(fn(items, wide))
    return 0


def scale(args: argparse.Namespace) -> int:
    req = {
        "op": "scale",
        "cluster": args.cluster,
        "namespace": args.namespace,
        "name": args.name,
        "replicas": args.replicas,
    }
    print("\n".join(call_daemon(state_paths(args), req)["results"]))
    return 0


def logs(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    if args.controlplane:
        st = call_daemon(paths, {"op": "status"})
        names = [c["name"] for c in st["clusters"]]
        cluster = args.cluster or (names[0] if len(names) == 1 else "")
        if cluster not in names:
            raise CliError(f"name a cluster with --cluster (clusters: {', '.join(names)})")
        path = paths.controller_log(cluster)
    else:
        if not args.pod:
            raise CliError("name a pod (see `isthmus get pods`), or use --controlplane")
        info = call_daemon(paths, {"op": "pod", "cluster": args.cluster, "name": args.pod})
        path = Path(info["proxy_log"] if args.proxy else info["log"])
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    if args.tail > 0:
        lines = lines[-args.tail :]
    if lines:
        print("\n".join(lines))
    return 0


def exec_(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise CliError("no command given: isthmus exec POD -- CMD [ARGS...]")
    info = call_daemon(paths, {"op": "pod", "cluster": args.cluster, "name": args.pod})
    try:
        prefix = launcher.enter_argv(paths)
    except launcher.LaunchError as e:
        raise CliError(str(e)) from e
    argv = prefix + pod_argv(info["netns"], Path(info["dir"]), info["name"], cmd)
    env = {
        **os.environ,
        "POD_NAME": info["name"],
        "POD_NAMESPACE": info["namespace"],
        "ISTHMUS_CLUSTER": info["cluster"],
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}:/usr/sbin:/sbin"
    os.execvpe(argv[0], argv, env)


def check(args: argparse.Namespace) -> int:
    results = checks.evaluate(checks.gather(state_paths(args)))
    print(render.as_json(results) if args.output == "json" else render.check_results(results))
    return 0 if all(r["ok"] or r.get("warning") for r in results) else 1


def controlplane(args: argparse.Namespace) -> int:
    print("\n".join(call_daemon(state_paths(args), {"op": "restart_controlplane", "cluster": args.cluster})["results"]))
    return 0
