"""One cluster's model as the platform holds it, for the commands that read figures against it."""

from __future__ import annotations

from isthmus.cli.commands import call_daemon
from isthmus.cli.errors import CliError
from isthmus.model.codec import decode
from isthmus.model.index import ClusterState
from isthmus.platform.local.paths import StatePaths


def known_namespaces(state: ClusterState) -> set[str]:
    """Namespaces created, or used by a pod or service, plus "default", which always exists."""
    return (
        {"default"}
        | {name for name, _ in state.namespace_annotations}
        | {p.namespace for p in state.pods}
        | {s.namespace for s in state.services}
    )


def cluster_state(paths: StatePaths, cluster: str | None, namespace: str | None) -> ClusterState:
    """The cluster's state (the only one when `cluster` is None); an unknown `namespace` is one clear error."""
    state = decode(ClusterState, call_daemon(paths, {"op": "get", "kind": "state", "cluster": cluster})["state"])
    if namespace is not None and namespace not in known_namespaces(state):
        raise CliError(
            f'namespace "{namespace}" not found in cluster {state.settings.name}'
            f" (namespaces: {', '.join(sorted(known_namespaces(state)))})"
        )
    return state
