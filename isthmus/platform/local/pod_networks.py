"""Choosing a cluster's pod network at `isthmus up` (`--pod-cidr CLUSTER=CIDR`).

A cluster's pod network is fixed when the cluster is made: the choice is
checked here, then stored with the cluster before the daemon creates it, so a
running daemon and a fresh one pick it up the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from isthmus.platform.local.netplan import parse_pod_cidr
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.store import Store


class PodNetworkError(ValueError):
    pass


def parse_flags(values: Sequence[str], targets: Sequence[str]) -> dict[str, str]:
    """`CLUSTER=CIDR` values, by cluster, each for a cluster this `up` names; normalised CIDRs."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, cidr = value.partition("=")
        if not sep or not name or not cidr:
            raise PodNetworkError(f"--pod-cidr {value}: write it as CLUSTER=CIDR, e.g. east=10.16.0.0/16")
        if name not in targets:
            raise PodNetworkError(
                f"--pod-cidr names cluster {name}, which this `up` does not start"
                f" (clusters: {', '.join(targets) or 'none'}); add it to --clusters"
            )
        if name in out:
            raise PodNetworkError(f"--pod-cidr is given twice for cluster {name}")
        try:
            out[name] = str(parse_pod_cidr(cidr))
        except ValueError as e:
            raise PodNetworkError(f"--pod-cidr {value}: {e}") from None
    return out


def check_against_stored(paths: StatePaths, wanted: Mapping[str, str]) -> None:
    """A stored cluster keeps its pod network: asking for another one is an error."""
    if not wanted or not paths.db.exists():
        return
    store = Store(paths.db)
    try:
        for row in store.clusters():
            if row.name in wanted and row.pod_cidr != wanted[row.name]:
                have = row.pod_cidr or f"the default 10.{16 + row.index}.0.0/16"
                raise PodNetworkError(
                    f"cluster {row.name} already exists with pod network {have};"
                    " a cluster's pod network is fixed when it is created"
                )
    finally:
        store.close()


def reserve(paths: StatePaths, names: Sequence[str], wanted: Mapping[str, str]) -> None:
    """Store this `up`'s new clusters, in order, those in `wanted` with their pod networks
    (check_against_stored first); without `wanted` the daemon stores them itself, as before."""
    if not wanted:
        return
    store = Store(paths.db)
    try:
        known = {row.name for row in store.clusters()}
        for name in names:
            if name not in known:
                store.add_cluster(name, wanted.get(name))
    finally:
        store.close()
