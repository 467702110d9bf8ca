"""Deciding what an apply or delete changes (pure): parse, check references, report per object.

All or nothing: any problem in the input rejects the whole input, and the
caller writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from isthmus.model.errors import IsthmusError
from isthmus.model.manifests import parse_manifests
from isthmus.model.resources import Deployment, Namespace, Resource, ServiceAccount, resource_key

Key = tuple[str, str, str]
BUILTIN_NAMESPACES = ("default",)
GROUPS = {
    "Deployment": "deployment.apps",
    "Service": "service",
    "Namespace": "namespace",
    "ServiceAccount": "serviceaccount",
}


class ApplyError(IsthmusError):
    pass


@dataclass(frozen=True)
class ApplyPlan:
    put: tuple[Resource, ...] = ()
    delete: tuple[Resource, ...] = ()
    messages: tuple[str, ...] = ()


def _label(r: Resource) -> str:
    return f"{GROUPS.get(r.kind, r.kind.lower())}/{r.meta.name}"


def _parse(text: str, source: str, namespace: str | None) -> list[Resource]:
    resources = parse_manifests(text, source, namespace=namespace)
    if not resources:
        raise ApplyError(f"{source}: no objects to apply")
    return resources


def plan_apply(current: Mapping[Key, Resource], text: str, source: str, namespace: str | None) -> ApplyPlan:
    resources = _parse(text, source, namespace)
    namespaces = set(BUILTIN_NAMESPACES) | {k[2] for k in current if k[0] == "Namespace"}
    namespaces |= {r.meta.name for r in resources if isinstance(r, Namespace)}
    accounts = {(k[1], k[2]) for k in current if k[0] == "ServiceAccount"}
    accounts |= {(r.meta.namespace, r.meta.name) for r in resources if isinstance(r, ServiceAccount)}
    problems = []
    for r in resources:
        if isinstance(r, Namespace):
            continue
        if r.meta.namespace not in namespaces:
            problems.append(
                f'{source}: {r.kind} {r.meta.name}: metadata.namespace: namespace "{r.meta.namespace}" does not exist (apply a Namespace first, or in the same file)'
            )
        if isinstance(r, Deployment):
            sa = r.template.service_account
            if sa != "default" and (r.meta.namespace, sa) not in accounts:
                problems.append(
                    f'{source}: Deployment {r.meta.name}: spec.template.spec.serviceAccountName: serviceaccount "{sa}" does not exist in namespace "{r.meta.namespace}"'
                )
    if problems:
        raise ApplyError("\n".join(problems))
    messages = []
    for r in resources:
        old = current.get(resource_key(r))
        verb = "created" if old is None else ("unchanged" if old == r else "configured")
        messages.append(f"{_label(r)} {verb}")
    return ApplyPlan(put=tuple(r for r in resources if current.get(resource_key(r)) != r), messages=tuple(messages))


def plan_delete(
    current: Mapping[Key, Resource], text: str, source: str, namespace: str | None, ignore_not_found: bool
) -> ApplyPlan:
    resources = _parse(text, source, namespace)
    missing = [r for r in resources if resource_key(r) not in current]
    if missing and not ignore_not_found:
        names = ", ".join(f'{r.kind} "{r.meta.name}" in namespace "{r.meta.namespace}"' for r in missing)
        raise ApplyError(f"{source}: not found: {names} (nothing was deleted; --ignore-not-found skips these)")
    doomed = [current[resource_key(r)] for r in resources if resource_key(r) in current]
    gone_namespaces = {r.meta.name for r in doomed if isinstance(r, Namespace)}
    # Deleting a namespace deletes what is in it, as Kubernetes does.
    doomed += [r for k, r in current.items() if k[0] != "Namespace" and k[1] in gone_namespaces and r not in doomed]
    return ApplyPlan(delete=tuple(doomed), messages=tuple(f"{_label(r)} deleted" for r in doomed))
