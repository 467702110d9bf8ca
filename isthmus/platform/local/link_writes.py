"""Writes made on behalf of a link's service mirror (pure): mirrors only, never anything of the user's.

The controller decides against a moment-old view of the cluster; these checks run
again inside the daemon, atomically with the write, so a Service a user creates
in a mirror's place in the meantime is never replaced. All or nothing, like any
apply: the controller decides again and writes the rest.
"""

from __future__ import annotations

from collections.abc import Mapping

from isthmus.model.manifests import parse_manifests
from isthmus.model.mesh import MIRROR_CLUSTER_LABEL, MIRROR_LABEL
from isthmus.model.resources import Namespace, Resource, Service, resource_key
from isthmus.platform.local.apply import BUILTIN_NAMESPACES, ApplyError, ApplyPlan, Key


def is_links(r: Resource, link: str) -> bool:
    return (
        isinstance(r, Service) and r.meta.label(MIRROR_LABEL) == "true" and r.meta.label(MIRROR_CLUSTER_LABEL) == link
    )


def plan_link_apply(current: Mapping[Key, Resource], text: str, source: str, link: str) -> ApplyPlan:
    """Put the link's mirrors; a Namespace in the input is created only if absent (never changed)."""
    resources = parse_manifests(text, source)
    problems = []
    namespaces = set(BUILTIN_NAMESPACES) | {k[2] for k in current if k[0] == "Namespace"}
    namespaces |= {r.meta.name for r in resources if isinstance(r, Namespace)}
    for r in resources:
        if isinstance(r, Namespace):
            continue
        name = f"{r.kind} {r.meta.namespace}/{r.meta.name}"
        if not is_links(r, link):
            problems.append(f"{source}: {name} is not a mirror of cluster {link}; a link writes only its mirrors")
            continue
        old = current.get(resource_key(r))
        if old is not None and not is_links(old, link):
            problems.append(f"{source}: {name} exists and is not cluster {link}'s mirror; it is left as it is")
        if r.meta.namespace not in namespaces:
            problems.append(f'{source}: {name}: namespace "{r.meta.namespace}" does not exist')
    if problems:
        raise ApplyError("\n".join(problems))
    put = tuple(
        r
        for r in resources
        if (isinstance(r, Namespace) and resource_key(r) not in current and r.meta.name not in BUILTIN_NAMESPACES)
        or (not isinstance(r, Namespace) and current.get(resource_key(r)) != r)
    )
    return ApplyPlan(put=put, messages=tuple(f"{r.kind.lower()}/{r.meta.name} written by link {link}" for r in put))


def plan_link_delete(current: Mapping[Key, Resource], text: str, source: str, link: str) -> ApplyPlan:
    """Delete the link's mirrors named in the input; anything else named there is refused, absent ones skipped."""
    resources = parse_manifests(text, source)
    refused = [
        f"{r.kind} {r.meta.namespace}/{r.meta.name}"
        for r in resources
        if not is_links(r, link) or not (resource_key(r) not in current or is_links(current[resource_key(r)], link))
    ]
    if refused:
        raise ApplyError(f"{source}: a link deletes only its own mirrors, not {', '.join(refused)}")
    doomed = tuple(current[resource_key(r)] for r in resources if resource_key(r) in current)
    return ApplyPlan(delete=doomed, messages=tuple(f"service/{r.meta.name} deleted by link {link}" for r in doomed))
