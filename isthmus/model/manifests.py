"""Kubernetes-shaped manifests -> resources, and back: what `isthmus apply -f` and `get -o yaml` use.

Parsing validates as the Kubernetes API server would (strictly, like
`kubectl apply --validate=strict`) and collects every problem in the input
before raising one `ManifestErrors`, so the caller can apply all or nothing.
The caller reads files; this module only ever sees text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from isthmus.model.errors import ManifestError, ManifestErrors
from isthmus.model.manifest_fields import Fields, Path, Problems, describe, quote, render_path
from isthmus.model.manifest_kinds import (
    Context,
    parse_deployment,
    parse_namespace,
    parse_secret,
    parse_service,
    parse_service_account,
)
from isthmus.model.manifest_yaml import YamlDocument, read_documents
from isthmus.model.resources import (
    Container,
    Deployment,
    Namespace,
    ObjectMeta,
    Resource,
    Secret,
    Service,
    ServiceAccount,
    resource_key,
)
from isthmus.model.validate import dns1123_label

Parser = Callable[[object, Path, Context], Resource]

# What `apply` accepts. A new kind is one parser here and one case in `dump_resource`.
KINDS: dict[tuple[str, str], Parser] = {
    ("v1", "Namespace"): parse_namespace,
    ("v1", "ServiceAccount"): parse_service_account,
    ("v1", "Service"): parse_service,
    ("apps/v1", "Deployment"): parse_deployment,
    ("v1", "Secret"): parse_secret,
    # ("split.smi-spec.io/v1alpha2", "TrafficSplit"): parse_traffic_split,
}
_API_VERSION = {kind: api for api, kind in KINDS}
_ACCEPTED = ", ".join(sorted([*_API_VERSION, "List"]))

# The Kubernetes API server refuses requests over 3 MiB; a manifest file past this is a mistake.
MAX_TEXT_CHARS = 4 * 1024 * 1024


def parse_manifests(text: str, source: str, *, namespace: str | None = None) -> list[Resource]:
    """Every resource in `text` (YAML, `---`-separated documents, `kind: List` expanded), in order.

    `source` names the input in messages (usually the file name). `namespace`
    (from `apply -n`) applies to objects whose metadata gives none; one that
    names a different namespace is an error, as with kubectl. Empty documents
    are skipped. Raises `ManifestErrors` listing every problem found.
    """
    if len(text) > MAX_TEXT_CHARS:
        message = f"input is larger than {MAX_TEXT_CHARS // (1024 * 1024)} MiB; split it into several files"
        raise ManifestErrors(source, [ManifestError(source, message)])
    documents, syntax_error = read_documents(text)
    run = _Run(source, namespace)
    for document in documents:
        run.document(document)
    if syntax_error is not None:
        run.errors.append(
            ManifestError(
                source,
                syntax_error.message,
                document=syntax_error.document,
                line=syntax_error.line,
                column=syntax_error.column,
            )
        )
    return run.finish()


def parse_objects(objects: Iterable[object], source: str, *, namespace: str | None = None) -> list[Resource]:
    """Like `parse_manifests`, for documents already decoded (e.g. JSON kept in the state store)."""
    run = _Run(source, namespace)
    for index, value in enumerate(objects, start=1):
        run.document(YamlDocument(index, value))
    return run.finish()


class _Run:
    """One input being parsed: its resources so far and every problem found."""

    def __init__(self, source: str, namespace: str | None) -> None:
        self.source = source
        self.errors: list[ManifestError] = []
        self.resources: list[Resource] = []
        self.defined: dict[tuple[str, str, str], tuple[int, Path]] = {}
        if namespace is not None and (problem := dns1123_label(namespace)) is not None:
            self.errors.append(ManifestError(source, f"namespace {quote(namespace)} from the command line {problem}"))
        self.context_namespace = namespace

    def document(self, document: YamlDocument) -> None:
        value = document.value
        for p in document.problems:
            self.error(document, p.path, p.message, p.line or None, p.column or None)
        if document.abandoned or value is None:
            return
        problems = Problems()
        found = _parse_document(value, Context(problems, self.context_namespace))
        for path, message in problems.items:
            self.error(document, path, message)
        for path, resource in found:
            if document.problems or problems.any_under(path):
                continue
            key = resource_key(resource)
            if key in self.defined:
                first_document, first_path = self.defined[key]
                where = f"document {first_document}" + (f" at {render_path(first_path)}" if first_path else "")
                message = f"{resource.kind} {quote(resource.meta.name)} is already defined in {where}"
                self.error(document, (*path, "metadata", "name"), message)
                continue
            self.defined[key] = (document.index, path)
            self.resources.append(resource)

    def error(
        self, document: YamlDocument, path: Path, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        kind, name = _what(document.value, path)
        self.errors.append(
            ManifestError(
                self.source,
                message,
                document=document.index,
                kind=kind,
                name=name,
                path=render_path(path),
                line=line,
                column=column,
            )
        )

    def finish(self) -> list[Resource]:
        if self.errors:
            raise ManifestErrors(self.source, self.errors)
        return self.resources


def _parse_document(value: object, ctx: Context) -> list[tuple[Path, Resource]]:
    if isinstance(value, dict) and value.get("kind") == "List":
        return _parse_list(value, ctx)
    resource = _parse_object(value, (), ctx)
    return [] if resource is None else [((), resource)]


def _parse_list(value: dict[Any, Any], ctx: Context) -> list[tuple[Path, Resource]]:
    root = Fields(ctx.problems, value, (), {"apiVersion", "kind", "items", "metadata"})
    api = root.string("apiVersion", required=True, why="List is v1")
    if api and api != "v1":
        ctx.problems.add(root.at("apiVersion"), f"List is v1, got {quote(api)}")
    # What `kubectl get -o yaml` writes there; nothing in it matters to Isthmus.
    root.mapping("metadata", {"resourceVersion"}).string("resourceVersion")
    found: list[tuple[Path, Resource]] = []
    for path, item in root.items("items", required=True):
        if isinstance(item, dict) and item.get("kind") == "List":
            ctx.problems.add((*path, "kind"), "a List cannot contain another List")
        elif (resource := _parse_object(item, path, ctx)) is not None:
            found.append((path, resource))
    return found


def _parse_object(value: object, path: Path, ctx: Context) -> Resource | None:
    problems = ctx.problems
    if not isinstance(value, dict):
        problems.add(path, f"expected a mapping (a Kubernetes object with apiVersion and kind), got {describe(value)}")
        return None
    kind, api = value.get("kind"), value.get("apiVersion")
    if kind is None:
        problems.add((*path, "kind"), f"required (Isthmus accepts {_ACCEPTED})")
        return None
    if not isinstance(kind, str):
        problems.add((*path, "kind"), f"expected string, got {describe(kind)}")
        return None
    if kind not in _API_VERSION:
        problems.add((*path, "kind"), f"unsupported kind {quote(kind)}; Isthmus accepts {_ACCEPTED}")
        return None
    want = _API_VERSION[kind]
    if api is None:
        problems.add((*path, "apiVersion"), f"required ({kind} is {want})")
        return None
    if api != want:
        problems.add((*path, "apiVersion"), f"{kind} is {want}, got {describe(api)}")
        return None
    return KINDS[(want, kind)](value, path, ctx)


def _what(document: object, path: Path) -> tuple[str, str]:
    """(kind, name) of the object a path points into, for "document 2 (Deployment web)"."""
    obj = document
    if (
        isinstance(document, dict)
        and document.get("kind") == "List"
        and len(path) >= 2
        and path[0] == "items"
        and isinstance(path[1], int)
        and isinstance(document.get("items"), list)
        and path[1] < len(document["items"])
    ):
        obj = document["items"][path[1]]
    if not isinstance(obj, dict):
        return "", ""
    kind = obj.get("kind")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return _label(kind), _label(name)


def _label(value: object) -> str:
    if not isinstance(value, str) or not value:
        return ""
    if len(value) <= 63 and value.replace("-", "").replace(".", "").isalnum() and value.isascii():
        return value
    return quote(value) if len(value) <= 40 else quote(value[:40])[:-1] + '…"'


def dump_resource(r: Resource) -> dict[str, Any]:
    """The manifest of a resource, such that parsing it gives back an equal resource."""
    if isinstance(r, Namespace):
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": _dump_meta(r.meta, namespaced=False)}
    if isinstance(r, ServiceAccount):
        return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _dump_meta(r.meta)}
    if isinstance(r, Service):
        spec: dict[str, Any] = {}
        if r.selector:
            spec["selector"] = dict(r.selector)
        spec["ports"] = [
            {
                **({"name": p.name} if p.name else {}),
                "protocol": p.protocol,
                "port": p.port,
                "targetPort": p.target_port,
            }
            for p in r.ports
        ]
        return {"apiVersion": "v1", "kind": "Service", "metadata": _dump_meta(r.meta), "spec": spec}
    if isinstance(r, Secret):
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _dump_meta(r.meta),
            "type": r.type,
            "data": dict(r.data),
        }
    if isinstance(r, Deployment):
        template_meta: dict[str, Any] = {"labels": dict(r.template.labels)}
        if r.template.annotations:
            template_meta["annotations"] = dict(r.template.annotations)
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _dump_meta(r.meta),
            "spec": {
                "replicas": r.replicas,
                "selector": {"matchLabels": dict(r.selector)},
                "template": {
                    "metadata": template_meta,
                    "spec": {
                        "serviceAccountName": r.template.service_account,
                        "containers": [_dump_container(c) for c in r.template.containers],
                    },
                },
            },
        }
    raise TypeError(f"not a resource: {r!r}")


def _dump_meta(meta: ObjectMeta, *, namespaced: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"name": meta.name}
    if namespaced:
        out["namespace"] = meta.namespace
    if meta.labels:
        out["labels"] = dict(meta.labels)
    if meta.annotations:
        out["annotations"] = dict(meta.annotations)
    return out


def _dump_container(c: Container) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name}
    if c.image:
        out["image"] = c.image
    out["command"] = list(c.command)
    if c.args:
        out["args"] = list(c.args)
    if c.env:
        out["env"] = [{"name": k, "value": v} for k, v in c.env]
    if c.ports:
        out["ports"] = [
            {"containerPort": p.container_port, **({"name": p.name} if p.name else {}), "protocol": p.protocol}
            for p in c.ports
        ]
    return out
