"""One decoded Kubernetes object -> one resource, for each kind Isthmus accepts.

Field by field as the Kubernetes API server validates them, narrowed to what
Isthmus implements; `isthmus.model.manifests` dispatches here by (apiVersion, kind).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from isthmus.model.manifest_fields import (
    Check,
    Fields,
    Path,
    Problems,
    check_integer,
    describe,
    expected,
    quote,
    render_path,
    type_name,
)
from isthmus.model.resources import (
    Container,
    ContainerPort,
    Deployment,
    Namespace,
    ObjectMeta,
    PodTemplate,
    Protocol,
    Secret,
    Service,
    ServiceAccount,
    ServicePort,
)
from isthmus.model.validate import (
    ANNOTATIONS_MAX_BYTES,
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    env_name,
    isthmus_annotation,
    label_value,
    port_name,
    process_text,
    qualified_name,
)

# Far above what one machine runs as local processes, low enough to catch a typo.
MAX_REPLICAS = 1000

OBJECT = frozenset({"apiVersion", "kind", "metadata"})
METADATA = frozenset({"name", "namespace", "labels", "annotations"})
# Written by the API server and ignored when applied, so output of `get -o yaml` applies again.
SERVER_WRITTEN = frozenset({"status"})
# Emitted empty by `kubectl create --dry-run -o yaml` and similar generators.
GENERATED_EMPTY = frozenset({"creationTimestamp"})

COMMAND_WHY = (
    "the local platform runs each container as a local process, so it needs the command to run (the image is ignored)"
)


@dataclass(frozen=True)
class Context:
    problems: Problems
    # From the command line (apply -n): used where metadata.namespace is absent.
    namespace: str | None = None


def parse_namespace(value: object, path: Path, ctx: Context) -> Namespace:
    root = Fields(ctx.problems, value, path, OBJECT, empty_ok={"spec"}, ignored=SERVER_WRITTEN)
    return Namespace(read_metadata(root, ctx, dns1123_label, namespaced=False))


def parse_service_account(value: object, path: Path, ctx: Context) -> ServiceAccount:
    root = Fields(ctx.problems, value, path, OBJECT)
    return ServiceAccount(read_metadata(root, ctx, dns1123_subdomain, namespaced=True))


# Kubernetes' limits for a Secret: key syntax, and the size of all values together.
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
SECRET_MAX_BYTES = 1024 * 1024


def parse_secret(value: object, path: Path, ctx: Context) -> Secret:
    """A Secret; `stringData` is folded into `data` as the API server does. Problems name keys, never values."""
    problems = ctx.problems
    root = Fields(problems, value, path, OBJECT | {"type", "data", "stringData"}, ignored=SERVER_WRITTEN)
    meta = read_metadata(root, ctx, dns1123_subdomain, namespaced=True)
    secret_type = root.string("type", default="Opaque", check=_secret_type)
    data: dict[str, str] = {}
    for key, raw in _secret_entries(root, "data"):
        try:
            decoded = base64.b64decode(raw, validate=True) if isinstance(raw, str) else None
        except (binascii.Error, ValueError):
            decoded = None
        if decoded is None:
            problems.add((*root.at("data"), key), "must be a base64 string (use stringData for plain text)")
            continue
        data[key] = base64.b64encode(decoded).decode()
    for key, raw in _secret_entries(root, "stringData"):
        if not isinstance(raw, str):
            problems.add((*root.at("stringData"), key), f"expected string, got {type_name(raw)}")
            continue
        data[key] = base64.b64encode(raw.encode(errors="surrogateescape")).decode()
    size = sum(len(base64.b64decode(v)) for v in data.values())
    if size > SECRET_MAX_BYTES:
        problems.add(root.at("data"), f"must be no more than {SECRET_MAX_BYTES} bytes in total, got {size}")
    return Secret(meta, secret_type, tuple(sorted(data.items())))


def _secret_entries(root: Fields, key: str) -> list[tuple[str, object]]:
    value = root.raw(key)
    if value is None:
        return []
    if not isinstance(value, dict):
        root.problems.add(root.at(key), expected("mapping", value))
        return []
    out = []
    for k, v in value.items():
        if not isinstance(k, str):
            root.problems.add(root.at(key), f"keys must be strings, got {describe(k)}")
        elif len(k) > 253 or not _SECRET_KEY.fullmatch(k):
            root.problems.add((*root.at(key), k), "invalid key: must be at most 253 of a-z, A-Z, 0-9, '-', '_' and '.'")
        else:
            out.append((k, v))
    return out


def _secret_type(value: str) -> str | None:
    if not value or len(value) > 253:
        return "must be 1 to 253 characters"
    return None


def parse_service(value: object, path: Path, ctx: Context) -> Service:
    problems = ctx.problems
    root = Fields(problems, value, path, OBJECT | {"spec"}, ignored=SERVER_WRITTEN)
    meta = read_metadata(root, ctx, dns1035_label, namespaced=True)
    spec = root.mapping("spec", {"selector", "ports", "type", "clusterIP"}, required=True)
    service_type = spec.string("type", default="ClusterIP")
    if service_type != "ClusterIP":
        problems.add(spec.at("type"), f"only ClusterIP is supported, got {quote(service_type)}")
    cluster_ip = spec.string("clusterIP")
    if cluster_ip == "None":
        problems.add(
            spec.at("clusterIP"),
            "headless services (clusterIP: None) are not supported yet; remove clusterIP to get a virtual IP",
        )
    elif cluster_ip:
        problems.add(spec.at("clusterIP"), f"is assigned by Isthmus; remove it (got {quote(cluster_ip)})")
    selector = spec.string_map("selector", check_key=qualified_name, check_value=label_value)
    entries = spec.items("ports", required=True, why="a Service needs at least one port")
    ports = [(p, _service_port(problems, item, p, named=len(entries) > 1)) for p, item in entries]

    names: dict[str, Path] = {}
    numbers: dict[tuple[int, str], Path] = {}
    for p, port in ports:
        if port.name:
            if port.name in names:
                first = render_path(names[port.name])
                problems.add((*p, "name"), f"duplicate port name {quote(port.name)} (also {first})")
            names.setdefault(port.name, p)
        if port.port:
            key = (port.port, port.protocol)
            if key in numbers:
                first = render_path(numbers[key])
                problems.add((*p, "port"), f"duplicate port {port.port}/{port.protocol} (also {first})")
            numbers.setdefault(key, p)
    return Service(meta, selector, tuple(port for _, port in ports))


def _service_port(problems: Problems, value: object, path: Path, *, named: bool) -> ServicePort:
    f = Fields(problems, value, path, {"name", "protocol", "port", "targetPort"})
    name = f.string("name", required=named, why="a Service with several ports must name each", check=dns1123_label)
    protocol = _protocol(f)
    port = f.integer("port", low=1, high=65535, default=0, required=True)
    target = f.raw("targetPort")
    target_port: int | str = port
    if isinstance(target, str):
        if target.isascii() and target.isdigit():
            problems.add(
                f.at("targetPort"), f"a port number must be an integer, got string {quote(target)} (remove the quotes)"
            )
        elif (problem := port_name(target)) is not None:
            problems.add(f.at("targetPort"), f"{problem}, got {quote(target)}")
        else:
            target_port = target
    elif isinstance(target, int) and not isinstance(target, bool):
        target_port = check_integer(problems, f.at("targetPort"), target, 1, 65535, port)
    elif target is not None:
        problems.add(f.at("targetPort"), expected("port number or port name", target))
    return ServicePort(port=port, target_port=target_port, name=name, protocol=protocol)


def parse_deployment(value: object, path: Path, ctx: Context) -> Deployment:
    problems = ctx.problems
    root = Fields(problems, value, path, OBJECT | {"spec"}, ignored=SERVER_WRITTEN)
    meta = read_metadata(root, ctx, dns1123_label, namespaced=True)
    spec = root.mapping("spec", {"replicas", "selector", "template"}, empty_ok={"strategy"}, required=True)
    replicas = spec.integer("replicas", low=0, high=MAX_REPLICAS, default=1)

    selector = spec.mapping("selector", {"matchLabels", "matchExpressions"}, required=True)
    expressions = selector.raw("matchExpressions")
    if expressions is not None and expressions != []:
        problems.add(selector.at("matchExpressions"), "not supported by Isthmus; select pods with matchLabels")
    match = selector.string_map("matchLabels", check_key=qualified_name, check_value=label_value)
    if selector.present and not match and not problems.any_under(selector.path):
        selector.missing("matchLabels", "a Deployment selects its pods by at least one label")

    template = spec.mapping("template", {"metadata", "spec"}, required=True)
    template_meta = template.mapping("metadata", {"labels", "annotations"}, empty_ok=GENERATED_EMPTY)
    labels = template_meta.string_map("labels", check_key=qualified_name, check_value=label_value)
    annotations = read_annotations(template_meta)
    if match and template.present and not problems.any_under(selector.at("matchLabels"), template_meta.path):
        have = dict(labels)
        lacking = ", ".join(f"{k}={v}" for k, v in match if have.get(k) != v)
        if lacking:
            problems.add(
                template_meta.at("labels"),
                f"selector does not match template labels: add {lacking} (from spec.selector.matchLabels)",
            )

    pod = template.mapping("spec", {"serviceAccountName", "containers"}, required=True)
    account = pod.string("serviceAccountName", default="default", check=dns1123_subdomain)
    entries = pod.items("containers", required=True, why="a Deployment runs at least one container")
    containers = [(p, _container(problems, item, p)) for p, item in entries]

    container_names: dict[str, Path] = {}
    port_names: dict[str, Path] = {}
    for p, container in containers:
        if container.name in container_names:
            first = render_path(container_names[container.name])
            problems.add((*p, "name"), f"duplicate container name {quote(container.name)} (also {first})")
        elif container.name:
            container_names[container.name] = p
        # Kubernetes wants port names unique across the whole pod, not just per container.
        for i, port in enumerate(container.ports):
            if port.name in port_names:
                first = render_path(port_names[port.name])
                problems.add((*p, "ports", i, "name"), f"duplicate port name {quote(port.name)} (also {first})")
            elif port.name:
                port_names[port.name] = (*p, "ports", i)

    return Deployment(
        meta=meta,
        replicas=replicas,
        selector=match,
        template=PodTemplate(
            labels=labels,
            annotations=annotations,
            service_account=account,
            containers=tuple(c for _, c in containers),
        ),
    )


def _container(problems: Problems, value: object, path: Path) -> Container:
    f = Fields(problems, value, path, {"name", "image", "command", "args", "env", "ports"}, empty_ok={"resources"})
    name = f.string("name", required=True, check=dns1123_label)
    image = f.string("image")
    command = f.strings("command", required=True, why=COMMAND_WHY, check=process_text)
    if command and not command[0]:
        problems.add((*f.at("command"), 0), "must name the program to run, got an empty string")
    args = f.strings("args", check=process_text)
    env = tuple(_env_var(problems, item, p) for p, item in f.items("env"))
    ports = tuple(_container_port(problems, item, p) for p, item in f.items("ports"))
    return Container(name=name, command=command, args=args, env=env, ports=ports, image=image)


def _env_var(problems: Problems, value: object, path: Path) -> tuple[str, str]:
    f = Fields(problems, value, path, {"name", "value", "valueFrom"})
    name = f.string("name", required=True, check=env_name)
    if f.has("valueFrom"):
        problems.add(f.at("valueFrom"), "not supported by Isthmus; give the value literally with value")
    return name, f.string("value", check=process_text)


def _container_port(problems: Problems, value: object, path: Path) -> ContainerPort:
    f = Fields(problems, value, path, {"containerPort", "name", "protocol"})
    port = f.integer("containerPort", low=1, high=65535, default=0, required=True)
    name = f.string("name", check=port_name)
    return ContainerPort(container_port=port, name=name, protocol=_protocol(f))


def _protocol(f: Fields) -> Protocol:
    value = f.string("protocol", default="TCP")
    if value == "SCTP":
        f.problems.add(f.at("protocol"), "SCTP is not supported; use TCP or UDP")
    elif value not in ("TCP", "UDP"):
        f.problems.add(f.at("protocol"), f"must be TCP or UDP, got {quote(value)}")
    return "UDP" if value == "UDP" else "TCP"


def read_metadata(root: Fields, ctx: Context, name_rule: Check, *, namespaced: bool) -> ObjectMeta:
    meta = root.mapping("metadata", METADATA, empty_ok=GENERATED_EMPTY, required=True)
    name = meta.string("name", required=True, check=name_rule)
    namespace = ""  # cluster-scoped: Kubernetes ignores a namespace given here, and so does Isthmus
    given = meta.string("namespace", check=dns1123_label)
    if namespaced:
        if given and ctx.namespace is not None and given != ctx.namespace:
            ctx.problems.add(
                meta.at("namespace"),
                f"is {quote(given)} but the namespace given on the command line is {quote(ctx.namespace)};"
                " make them agree or leave one out",
            )
        namespace = given or ctx.namespace or "default"
    labels = meta.string_map("labels", check_key=qualified_name, check_value=label_value)
    return ObjectMeta(name=name, namespace=namespace, labels=labels, annotations=read_annotations(meta))


def read_annotations(meta: Fields) -> tuple[tuple[str, str], ...]:
    annotations = meta.string_map("annotations", check_key=qualified_name, check_value=None)
    for key, value in annotations:
        if (problem := isthmus_annotation(key, value)) is not None:
            meta.problems.add((*meta.at("annotations"), key), f"{problem}, got {quote(value)}")
    size = sum(len(k.encode(errors="replace")) + len(v.encode(errors="replace")) for k, v in annotations)
    if size > ANNOTATIONS_MAX_BYTES:
        meta.problems.add(
            meta.at("annotations"), f"must be no more than {ANNOTATIONS_MAX_BYTES} bytes in total, got {size}"
        )
    return annotations
