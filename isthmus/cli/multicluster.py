"""`isthmus multicluster`: gateways, links between clusters, and how the links are doing."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from isthmus.cli import render
from isthmus.cli.commands import NAME_RULE, call_daemon, state_paths, valid_cluster_name
from isthmus.cli.errors import CliError
from isthmus.model.codec import decode
from isthmus.model.index import ClusterState
from isthmus.model.manifests import dump_resource, parse_objects
from isthmus.model.mesh import GATEWAY_NAMESPACE, GATEWAY_SERVICE_ACCOUNT, LINK_SECRET_TYPE
from isthmus.model.resources import Secret
from isthmus.multicluster import checks
from isthmus.multicluster.errors import BadLinkSecret
from isthmus.multicluster.gateway import GATEWAY_DEPLOYMENT, GATEWAY_PORT, PROBE_PATH, PROBE_PORT, gateway_manifests
from isthmus.multicluster.link_secret import LinkConfig, from_secret, link_objects, secret_name
from isthmus.multicluster.links import LINKS_OP
from isthmus.multicluster.mirrors import RemoteGateway, is_mirror_from
from isthmus.platform.local import rpc
from isthmus.platform.local.link_credentials import credential_id
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


def _clusters(paths: StatePaths) -> list[dict[str, Any]]:
    return list(call_daemon(paths, {"op": "status"})["clusters"])


def _cluster_status(paths: StatePaths, cluster: str | None, flag: str = "--cluster") -> dict[str, Any]:
    clusters = _clusters(paths)
    if cluster is None and len(clusters) == 1:
        found: dict[str, Any] = clusters[0]
        return found
    for c in clusters:
        if c["name"] == cluster:
            return dict(c)
    names = ", ".join(c["name"] for c in clusters)
    raise CliError(
        f"no cluster named {cluster!r} (clusters: {names})" if cluster else f"name one with {flag} ({names})"
    )


def _selected(paths: StatePaths, cluster: str | None) -> list[str]:
    """The named cluster, or every cluster."""
    return [_cluster_status(paths, cluster)["name"]] if cluster else [c["name"] for c in _clusters(paths)]


# install / uninstall


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
        f" link other clusters to it: isthmus multicluster link --cluster-name {cluster['name']}"
        " | isthmus apply --cluster OTHER -f - (see docs/multicluster.md)."
    )
    return 0


def uninstall(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    name = _cluster_status(paths, args.cluster)["name"]
    if _gateway_deployment(paths, name) is None:
        print(f"no gateway is installed in cluster {name}")
        return 0
    users = sorted(
        {i["cluster"] for i in call_daemon(paths, {"op": "link_credentials", "cluster": name})["credentials"]}
    )
    if users and not args.force:
        raise CliError(
            f"cluster(s) {', '.join(users)} are linked to {name} and call through its gateway; unlink them first"
            f" (isthmus multicluster unlink --cluster-name {name} --cluster CLUSTER), or pass --force"
            " (their mirrors of it then fail until a gateway is back)"
        )
    # Only the gateway: the namespace may hold this cluster's own links, and goes only when empty.
    gateway_only = "---".join(gateway_manifests().split("---")[1:])
    source = "isthmus multicluster uninstall"
    req = {"op": "delete", "cluster": name, "text": gateway_only, "source": source, "ignore_not_found": True}
    results = list(call_daemon(paths, req)["results"])
    if not _namespace_holds_anything(paths, name):
        namespace = gateway_manifests().split("---")[0]
        req = {"op": "delete", "cluster": name, "text": namespace, "source": source, "ignore_not_found": True}
        results += call_daemon(paths, req)["results"]
    print("\n".join(results))
    if users:
        print(f"linked cluster(s) {', '.join(users)} now find {name}'s gateway dead", file=sys.stderr)
    return 0


def _namespace_holds_anything(paths: StatePaths, cluster: str) -> bool:
    for kind in ("secrets", "services", "deployments"):
        items = call_daemon(paths, {"op": "get", "kind": kind, "cluster": cluster})["items"]
        if any(i["metadata"].get("namespace") == GATEWAY_NAMESPACE for i in items):
            return True
    accounts = call_daemon(paths, {"op": "get", "kind": "serviceaccounts", "cluster": cluster})["items"]
    return any(
        i["metadata"].get("namespace") == GATEWAY_NAMESPACE and i["metadata"]["name"] != GATEWAY_SERVICE_ACCOUNT
        for i in accounts
    )


# link / unlink


def link(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    if not valid_cluster_name(args.cluster_name):
        raise CliError(f"--cluster-name {args.cluster_name!r} is not valid: use {NAME_RULE}")
    clusters = [c["name"] for c in _clusters(paths)]
    remote = _cluster_status(paths, args.cluster or args.cluster_name)["name"]
    linking = args.linking_cluster
    if linking is None:
        others = [c for c in clusters if c != remote]
        if len(others) != 1:
            raise CliError(
                f"name the cluster that will use the link with --linking-cluster (clusters: {', '.join(clusters)})"
            )
        linking = others[0]
    if linking not in clusters:
        raise CliError(f"no cluster named {linking!r} to link from (clusters: {', '.join(clusters)})")
    if linking == remote:
        raise CliError(f"cluster {remote} cannot link to itself")
    if _gateway_deployment(paths, remote) is None:
        raise CliError(
            f"cluster {remote} has no gateway, so nothing of it can be called: install one first"
            f" (isthmus multicluster install --cluster {remote})"
        )
    issued = call_daemon(paths, {"op": "link_issue", "cluster": remote, "linking_cluster": linking})
    host, _, port = str(issued["api_address"]).rpartition(":")
    gateway = issued["gateway"]
    config = LinkConfig(
        cluster_name=args.cluster_name,
        linking_cluster=linking,
        api_host=host,
        api_port=int(port),
        api_identity=str(issued["api_identity"]),
        ca_bundle=str(issued["ca_bundle"]),
        credential=str(issued["credential"]),
        gateway=RemoteGateway(str(gateway["address"]), int(gateway["port"]), str(gateway["identity"])),
        probe_port=int(gateway["probe_port"]),
    )
    print("---\n".join(render.as_yaml(o) for o in link_objects(config)), end="")
    print(
        f"# apply this to {linking}: ... | isthmus apply --cluster {linking} -f -"
        f" (it replaces any earlier credential of {linking} for {remote})",
        file=sys.stderr,
    )
    return 0


def _link_secrets(paths: StatePaths, cluster: str) -> dict[str, Secret]:
    items = call_daemon(paths, {"op": "get", "kind": "secrets", "cluster": cluster, "data": True})["items"]
    out = {}
    for item in items:
        if item["metadata"].get("namespace") != GATEWAY_NAMESPACE or item.get("type") != LINK_SECRET_TYPE:
            continue
        (secret,) = parse_objects([item], "link secret")
        assert isinstance(secret, Secret)
        out[secret.meta.name] = secret
    return out


def unlink(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    cluster = _cluster_status(paths, args.cluster)["name"]
    remote = args.cluster_name
    secret = _link_secrets(paths, cluster).get(secret_name(remote))
    state = decode(ClusterState, call_daemon(paths, {"op": "get", "kind": "state", "cluster": cluster})["state"])
    mirrors = [s.service for s in state.services if is_mirror_from(s.service, remote)]
    if secret is None and not mirrors:
        raise CliError(f"cluster {cluster} has no link to {remote} (see `isthmus multicluster gateways`)")
    results: list[str] = []
    source = "isthmus multicluster unlink"
    if secret is not None:
        # The Secret first: its controller then stops, and deletes the mirrors too.
        text = json.dumps(dump_resource(secret))
        results += call_daemon(paths, {"op": "delete", "cluster": cluster, "text": text, "source": source})["results"]
    if mirrors:
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": [dump_resource(m) for m in mirrors]})
        req = {"op": "delete", "cluster": cluster, "link": remote, "text": text, "source": source}
        results += call_daemon(paths, req)["results"]
    print("\n".join(results))
    if secret is not None:
        print(_revoke(paths, secret, remote))
    return 0


def _revoke(paths: StatePaths, secret: Secret, remote: str) -> str:
    raw = secret.value("credential")
    found = credential_id(raw.decode(errors="replace")) if raw else None
    if found is None:
        return f"the link held no readable credential; nothing to revoke in {remote}"
    try:
        revoked = call_daemon(paths, {"op": "link_revoke", "cluster": remote, "id": found})["revoked"]
    except CliError as e:
        return f"could not revoke the credential in {remote} ({e}); it stays valid there until revoked"
    return f"credential revoked in {remote}" if revoked else f"the credential was no longer valid in {remote}"


# gateways / check


def _links_status(paths: StatePaths, cluster: str) -> dict[str, Any] | str:
    try:
        resp = rpc.call(paths.controlplane_socket(cluster), {"op": LINKS_OP}, timeout=10)
    except (OSError, rpc.RpcError, ValueError) as e:
        return f"the control plane of {cluster} did not answer: {e}"
    if not resp.get("ok"):
        return f"the control plane of {cluster} refused: {resp.get('error')}"
    return resp


def gateways(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    answers = {name: _links_status(paths, name) for name in _selected(paths, args.cluster)}
    if args.output == "json":
        print(
            render.as_json(
                [{"cluster": n, **a} if isinstance(a, dict) else {"cluster": n, "error": a} for n, a in answers.items()]
            )
        )
        return 0
    errors = [a for a in answers.values() if isinstance(a, str)]
    rows = render_gateways({n: a for n, a in answers.items() if isinstance(a, dict)})
    if rows:
        print(rows)
    elif not errors:
        print("No links (make one: isthmus multicluster link --cluster-name NAME).", file=sys.stderr)
    for e in errors:
        print(f"isthmus: {e}", file=sys.stderr)
    return 1 if errors else 0


def render_gateways(answers: dict[str, dict[str, Any]]) -> str:
    """One row per link: the linking cluster, the remote, its gateway's health and probe latencies."""

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}ms"

    rows = []
    for cluster, answer in sorted(answers.items()):
        for s in answer.get("links", []):
            probe = s["probe"]
            since = probe["since_success_s"]
            alive = {True: "True", False: "False", None: "unknown"}[probe["alive"]]
            rows.append(
                [
                    cluster,
                    s["cluster"],
                    f"{s['gateway']['address']}:{s['gateway']['port']}",
                    alive,
                    len(s["mirrors"]),
                    ms(probe["latency_ms"]["p50"]),
                    ms(probe["latency_ms"]["p95"]),
                    ms(probe["latency_ms"]["p99"]),
                    "never" if since is None else f"{since:.1f}s ago",
                ]
            )
    if not rows:
        return ""
    headers = ["CLUSTER", "LINKED", "GATEWAY", "ALIVE", "MIRRORS", "P50", "P95", "P99", "LAST-SUCCESS"]
    return render.table(headers, rows)


def check(args: argparse.Namespace) -> int:
    paths = state_paths(args)
    names = _selected(paths, args.cluster)
    everyone = {c["name"] for c in _clusters(paths)}
    anchors = paths.trust_bundle.read_text() if paths.trust_bundle.exists() else ""
    facts = []
    for name in names:
        links = checks.ClusterLinks(name, status=_links_status(paths, name), anchors_pem=anchors)
        for secret_name_, secret in _link_secrets(paths, name).items():
            try:
                config: LinkConfig | str = from_secret(secret)
            except BadLinkSecret as e:
                config = e.message
            links.secrets[secret_name_] = config
            if not isinstance(config, str) and config.cluster_name in everyone:
                try:
                    issued = call_daemon(paths, {"op": "link_credentials", "cluster": config.cluster_name})
                    links.issued[config.cluster_name] = list(issued["credentials"])
                except CliError as e:
                    links.issued[config.cluster_name] = str(e)
        facts.append(links)
    results = checks.evaluate(facts)
    print(render.as_json(results) if args.output == "json" else render.check_results(results))
    return 0 if all(r["ok"] for r in results) else 1


def register(sub: Any) -> None:
    """The `multicluster` command group, on the top-level subparsers."""
    p = sub.add_parser(
        "multicluster",
        help="connect clusters: gateways, links, mirrored services",
        description="Connect clusters. Each cluster's gateway is the only thing of it that other clusters"
        " can reach: it forwards mutual-TLS connections from the mesh to the services labelled"
        ' mirror.isthmus.io/exported: "true", and nothing else. A link lets one cluster watch another\'s'
        " exports and mirror each as <service>-<cluster>.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("install", help="deploy the cluster's gateway and wait until it is ready")
    a.add_argument("--cluster", "-c", help="which cluster (needed when more than one runs)")
    a.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it (default 120)")
    a.set_defaults(func=install)
    a = actions.add_parser("uninstall", help="remove the cluster's gateway (refused while clusters are linked to it)")
    a.add_argument("--cluster", "-c", help="which cluster (needed when more than one runs)")
    a.add_argument("--force", action="store_true", help="remove it even while links depend on it")
    a.set_defaults(func=uninstall)

    a = actions.add_parser(
        "link",
        help="print the manifests that let another cluster mirror this one's exported services",
        description="Issue a credential that can only read the cluster's exported services and its gateway,"
        " and print it with the cluster's link API address, CA bundle and gateway as a Secret to apply to"
        " the linking cluster.",
        epilog="example: isthmus multicluster link --cluster-name east | isthmus apply --cluster west -f -",
    )
    a.add_argument("--cluster-name", required=True, help="the name the linked cluster's mirrors carry (e.g. east)")
    a.add_argument("--cluster", "-c", help="the cluster to link to (default: the one --cluster-name names)")
    a.add_argument("--linking-cluster", help="the cluster that will apply the output (default: the other one of two)")
    a.set_defaults(func=link)
    a = actions.add_parser(
        "unlink", help="remove a link and every mirror it made, and revoke its credential in the linked cluster"
    )
    a.add_argument("--cluster-name", required=True, help="the linked cluster (e.g. east)")
    a.add_argument("--cluster", "-c", help="the cluster holding the link (needed when more than one runs)")
    a.set_defaults(func=unlink)

    a = actions.add_parser(
        "gateways", help="each link's remote gateway: alive, mirrored services, probe latency, last success"
    )
    a.add_argument("--cluster", "-c", help="only the links of this cluster (default: every cluster)")
    a.add_argument("-o", "--output", choices=["table", "json"], default="table")
    a.set_defaults(func=gateways)
    a = actions.add_parser(
        "check", help="check every link: credential, link API, gateway, mirrors in sync, shared trust anchor"
    )
    a.add_argument("--cluster", "-c", help="only the links of this cluster (default: every cluster)")
    a.add_argument("-o", "--output", choices=["table", "json"], default="table")
    a.set_defaults(func=check)
