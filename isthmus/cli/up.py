"""`isthmus up`: the mesh's settings and the user's own trust material, checked before anything starts."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from isthmus.cli import commands
from isthmus.cli.commands import state_paths, valid_cluster_name
from isthmus.cli.durations import DurationError, parse_duration
from isthmus.cli.errors import CliError
from isthmus.cli.identity import one_line_errors
from isthmus.identity.clock import SystemClock
from isthmus.platform.local import pod_networks, trust
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.settings import MeshSettings, SettingsError, trust_domain_change_problem
from isthmus.platform.local.store import Store


def mesh_settings(args: argparse.Namespace, stored: MeshSettings | None) -> MeshSettings | None:
    """The settings this `up` asks for, or None to keep the stored ones; a flag not given keeps its value."""
    if args.trust_domain is None and args.workload_cert_lifetime is None:
        return None
    base = stored or MeshSettings()
    try:
        lifetime = (
            parse_duration(args.workload_cert_lifetime, "--workload-cert-lifetime")
            if args.workload_cert_lifetime is not None
            else base.workload_cert_lifetime
        )
        wanted = MeshSettings(trust_domain=args.trust_domain or base.trust_domain, workload_cert_lifetime=lifetime)
    except (DurationError, SettingsError) as e:
        raise CliError(str(e)) from e
    if stored and (problem := trust_domain_change_problem(stored.trust_domain, wanted.trust_domain)):
        raise CliError(problem)
    return wanted


def stored_settings(paths: StatePaths) -> MeshSettings | None:
    if not paths.db.exists():
        return None
    store = Store(paths.db)
    try:
        return store.mesh_settings()
    finally:
        store.close()


def _by_cluster(values: Sequence[str], flag: str, targets: Sequence[str]) -> dict[str, Path]:
    """`[CLUSTER=]FILE` values of a repeatable flag, by cluster; a bare FILE needs exactly one cluster."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not (sep and valid_cluster_name(name)):
            if len(targets) != 1:
                raise CliError(
                    f"{flag} {value}: say which cluster it is for ({flag} CLUSTER={value});"
                    f" this `up` starts clusters {', '.join(targets) or 'none'}"
                )
            name, path = targets[0], value
        if name in out:
            raise CliError(f"{flag} is given twice for cluster {name}")
        out[name] = Path(path).expanduser()
    return out


def user_trust(args: argparse.Namespace, paths: StatePaths, targets: Sequence[str]) -> trust.UserTrust:
    """The trust flags of `up`, checked for consistency (the files themselves are checked later)."""
    certs = _by_cluster(args.issuer or [], "--issuer", targets)
    keys = _by_cluster(args.issuer_key or [], "--issuer-key", targets)
    for cluster in sorted(set(certs) ^ set(keys)):
        have, need = ("--issuer", "--issuer-key") if cluster in certs else ("--issuer-key", "--issuer")
        raise CliError(f"{have} for cluster {cluster} needs {need} {cluster}=FILE too")
    known = set(targets) | set(trust.stored_issuers(paths))
    for cluster in sorted(set(certs) - known):
        raise CliError(
            f"--issuer names cluster {cluster}, which this `up` does not start (clusters: {', '.join(targets)});"
            f" add it to --clusters"
        )
    return trust.UserTrust(
        anchor_cert=Path(args.trust_anchor).expanduser() if args.trust_anchor else None,
        anchor_key=Path(args.trust_anchor_key).expanduser() if args.trust_anchor_key else None,
        issuers={c: (certs[c], keys[c]) for c in sorted(certs)},
    )


@one_line_errors
def up(args: argparse.Namespace) -> int:
    """`isthmus up`, after checking its settings and storing the user's own trust material, if any."""
    paths = state_paths(args)
    stored = stored_settings(paths)
    args.mesh_settings = mesh_settings(args, stored)
    domain = (args.mesh_settings or stored or MeshSettings()).trust_domain
    names = [n.strip() for n in args.clusters.split(",")] if args.clusters else []
    if any(not valid_cluster_name(n) for n in names) or len(set(names)) != len(names):
        return commands.up(args)  # it says what is wrong with the names, and starts nothing
    targets = names or (["local"] if not paths.db.exists() else sorted(trust.stored_issuers(paths)))
    wanted = user_trust(args, paths, targets)
    try:
        pod_cidrs = pod_networks.parse_flags(args.pod_cidr or [], names or targets)
        pod_networks.check_against_stored(paths, pod_cidrs)
    except pod_networks.PodNetworkError as e:
        raise CliError(str(e)) from e
    # Also without flags: a mesh that holds its anchor's certificate only cannot add a cluster without an issuer.
    plan = trust.plan_user_trust(paths, wanted, names or targets, domain, SystemClock())
    if not plan.empty:
        trust.install(paths, plan)
    pod_networks.reserve(paths, names or targets, pod_cidrs)
    return commands.up(args)


def add_up_flags(p: argparse.ArgumentParser) -> None:
    """`isthmus up`'s flags: mesh settings, and one's own trust material."""
    p.add_argument(
        "--trust-domain",
        metavar="DOMAIN",
        help="the SPIFFE trust domain of the mesh's identities (default cluster.local); fixed when the mesh is made",
    )
    p.add_argument(
        "--workload-cert-lifetime",
        metavar="DURATION",
        help="how long workload certificates last, e.g. 24h (the default), 1h, 10m; from 1m to 30d;"
        " sidecars renew at about 70%% of it",
    )
    p.add_argument(
        "--trust-anchor",
        metavar="CERT",
        help="your own trust anchor instead of a generated one (a mesh keeps the anchor it started with)",
    )
    p.add_argument(
        "--trust-anchor-key", metavar="KEY", help="its key, so that isthmus can create the issuers not given"
    )
    p.add_argument(
        "--issuer",
        action="append",
        metavar="[CLUSTER=]CERT",
        help="a cluster's issuer certificate, signed by the anchor (repeat per cluster)",
    )
    p.add_argument("--issuer-key", action="append", metavar="[CLUSTER=]KEY", help="that issuer's key")
    p.add_argument(
        "--pod-cidr",
        action="append",
        metavar="CLUSTER=CIDR",
        help="a new cluster's pod network, e.g. east=10.16.0.0/16 (private, /8 to /23; may overlap other"
        " clusters', which never route to each other); default 10.<16+n>.0.0/16; fixed once the cluster exists",
    )
