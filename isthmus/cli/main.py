"""The `isthmus` command: argument parsing and the one place exit codes come from."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from isthmus.cli import addons, commands, edges, identity, multicluster, stat, traces, up
from isthmus.cli.errors import CliError

DESCRIPTION = """\
Isthmus: a multi-cluster service mesh. On this machine it runs clusters of
meshed workloads (the local platform) with Envoy sidecars configured by the
Isthmus control plane.

Start with `isthmus up`, apply manifests with `isthmus apply -f FILE`, and
look around with `isthmus get pods` and `isthmus check`."""


def _cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", "-c", help="which cluster (needed when more than one runs)")


def _namespace(p: argparse.ArgumentParser) -> None:
    p.add_argument("--namespace", "-n", help="namespace (default: the manifest's, else 'default')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isthmus", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", help="state directory (default $ISTHMUS_HOME, else ~/.local/state/isthmus)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "up",
        help="start the local mesh (or add clusters to a running one)",
        description="Start the local mesh, or add clusters to a running one. The first `up` creates the mesh's"
        " trust anchor and each new cluster gets an issuer signed by it, unless you bring your own:"
        " --trust-anchor CERT with --trust-anchor-key KEY (isthmus creates the issuers), or with"
        " --issuer CLUSTER=CERT --issuer-key CLUSTER=KEY for every new cluster (the anchor's key stays with you).",
    )
    p.add_argument(
        "--clusters",
        default=None,
        help="comma-separated cluster names (default: 'local', or the clusters already stored)",
    )
    up.add_up_flags(p)
    p.set_defaults(func=up.up)

    p = sub.add_parser("down", help="stop the local mesh; its state stays for the next `up`")
    p.add_argument("--purge", action="store_true", help="also delete the stored state (clusters, workloads, logs)")
    p.set_defaults(func=commands.down)

    p = sub.add_parser("status", help="show the running clusters")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=commands.status)

    p = sub.add_parser("apply", help="create or update resources from a manifest file (all or nothing)")
    p.add_argument("-f", "--filename", required=True, action="append", help="manifest file, or - for standard input")
    _cluster(p)
    _namespace(p)
    p.add_argument("--wait", action="store_true", help="wait until every deployment has its replicas ready")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to --wait (default 120)")
    p.set_defaults(func=commands.apply)

    p = sub.add_parser("delete", help="delete the resources a manifest file names")
    p.add_argument("-f", "--filename", required=True, action="append", help="manifest file, or - for standard input")
    p.add_argument("--ignore-not-found", action="store_true")
    _cluster(p)
    _namespace(p)
    p.set_defaults(func=commands.delete)

    p = sub.add_parser("get", help="list pods, services, deployments, namespaces or serviceaccounts")
    p.add_argument("kind", help="pods|services|deployments|namespaces|serviceaccounts (or po, svc, deploy, ns, sa)")
    p.add_argument("name", nargs="?", help="only this one")
    p.add_argument("-o", "--output", choices=["table", "wide", "json", "yaml"], default="table")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    _cluster(p)
    _namespace(p)
    p.set_defaults(func=commands.get)

    p = sub.add_parser("scale", help="set the number of replicas of a deployment")
    p.add_argument("kind", choices=["deployment", "deploy", "deployments"])
    p.add_argument("name")
    p.add_argument("--replicas", type=int, required=True)
    _cluster(p)
    _namespace(p)
    p.set_defaults(func=commands.scale)

    p = sub.add_parser("logs", help="print a pod's app log (or its sidecar's with --proxy)")
    p.add_argument("pod", nargs="?")
    p.add_argument("--proxy", action="store_true", help="the sidecar's log instead of the app's")
    p.add_argument("--controlplane", action="store_true", help="the cluster control plane's log")
    p.add_argument("--tail", type=int, default=0, help="only the last N lines")
    _cluster(p)
    p.set_defaults(func=commands.logs)

    p = sub.add_parser(
        "exec", help="run a command inside a pod's network namespace", usage="isthmus exec [--cluster C] POD -- CMD..."
    )
    p.add_argument("pod")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    _cluster(p)
    p.set_defaults(func=commands.exec_)

    p = sub.add_parser("check", help="check that the mesh is healthy")
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=commands.check)

    identity.register(sub)
    multicluster.register(sub)
    edges.register(sub)
    stat.register(sub)
    addons.register(sub)
    traces.register(sub)

    p = sub.add_parser("controlplane", help="operate a cluster's control plane")
    p.add_argument("action", choices=["restart"])
    _cluster(p)
    p.set_defaults(func=commands.controlplane)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
        return code
    except CliError as e:
        print(f"isthmus: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `head`) went away; say nothing more, like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
