"""Manifest parsing: what valid manifests become, and the exact message for each kind of mistake."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from isthmus.model.errors import IsthmusError, ManifestError, ManifestErrors
from isthmus.model.manifests import KINDS, MAX_TEXT_CHARS, dump_resource, parse_manifests, parse_objects
from isthmus.model.resources import (
    Container,
    ContainerPort,
    Deployment,
    Namespace,
    ObjectMeta,
    PodTemplate,
    Service,
    ServiceAccount,
    ServicePort,
)
from tests.model.manifest_samples import (
    DELETE,
    SAMPLES,
    SOURCE,
    changed,
    deployment,
    namespace,
    service,
    service_account,
    to_yaml,
)


def problems(text: str, namespace: str | None = None) -> list[str]:
    with pytest.raises(ManifestErrors) as info:
        parse_manifests(text, SOURCE, namespace=namespace)
    return str(info.value).splitlines()


# --- valid input ---------------------------------------------------------------------------------


def test_deployment_parses_into_the_model() -> None:
    [d] = parse_manifests(to_yaml(deployment()), SOURCE)
    assert d == Deployment(
        meta=ObjectMeta(name="web", namespace="default", labels=(("app", "web"),)),
        replicas=2,
        selector=(("app", "web"),),
        template=PodTemplate(
            labels=(("app", "web"), ("version", "v1")),
            annotations=(("config.isthmus.io/opaque-ports", "6379"), ("isthmus.io/inject", "enabled")),
            service_account="web",
            containers=(
                Container(
                    name="app",
                    command=("python", "-m", "http.server"),
                    args=("8080",),
                    env=(("MODE", "demo"),),
                    ports=(ContainerPort(8080, "http"), ContainerPort(6379, "redis", "TCP")),
                    image="ghcr.io/example/web:1",
                ),
            ),
        ),
    )


def test_service_namespace_and_account_parse_into_the_model() -> None:
    text = to_yaml(namespace(), service_account(), service())
    assert parse_manifests(text, SOURCE) == [
        Namespace(ObjectMeta(name="shop", namespace="", labels=(("team", "a"),))),
        ServiceAccount(ObjectMeta(name="web", namespace="shop")),
        Service(
            meta=ObjectMeta(name="web", namespace="shop"),
            selector=(("app", "web"),),
            ports=(ServicePort(80, "http", "http"), ServicePort(53, 5353, "dns", "UDP")),
        ),
    ]


MINIMAL_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, command: [./api]}]
"""


def test_defaults_are_kubernetes_defaults() -> None:
    [d] = parse_manifests(MINIMAL_DEPLOYMENT, SOURCE)
    assert isinstance(d, Deployment)
    assert (d.meta.namespace, d.replicas, d.template.service_account) == ("default", 1, "default")
    [s] = parse_manifests("{apiVersion: v1, kind: Service, metadata: {name: s}, spec: {ports: [{port: 80}]}}", SOURCE)
    assert s == Service(ObjectMeta("s"), selector=(), ports=(ServicePort(80, 80, "", "TCP"),))


KUBECTL_DRY_RUN = """
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        command: [nginx]
        resources: {}
status: {}
"""


@pytest.mark.parametrize(
    ("text", "namespace", "expect"),
    [
        pytest.param(MINIMAL_DEPLOYMENT, "prod", [("Deployment", "prod", "api")], id="namespace-argument-fills-in"),
        pytest.param(
            to_yaml(service()), "shop", [("Service", "shop", "web")], id="namespace-argument-agrees-with-metadata"
        ),
        pytest.param(
            to_yaml(namespace()), "other", [("Namespace", "", "shop")], id="namespace-argument-ignored-for-namespace"
        ),
        pytest.param("", None, [], id="empty-input"),
        pytest.param("# only a comment\n---\n---\n", None, [], id="empty-documents-skipped"),
        pytest.param(
            "---\n" + to_yaml(namespace()) + "---\n\n---\n" + MINIMAL_DEPLOYMENT,
            None,
            [("Namespace", "", "shop"), ("Deployment", "default", "api")],
            id="multi-document",
        ),
        pytest.param(
            to_yaml(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "metadata": {"resourceVersion": ""},
                    "items": [namespace(), service()],
                }
            )
            + "---\n"
            + to_yaml(service_account()),
            None,
            [("Namespace", "", "shop"), ("Service", "shop", "web"), ("ServiceAccount", "shop", "web")],
            id="list-expands-in-place",
        ),
        pytest.param(KUBECTL_DRY_RUN, None, [("Deployment", "default", "web")], id="kubectl-create-dry-run-output"),
        pytest.param(
            to_yaml(changed(deployment(), "status", {"replicas": 2, "readyReplicas": 1})),
            None,
            [("Deployment", "default", "web")],
            id="status-is-ignored-as-kubernetes-does",
        ),
        pytest.param(json.dumps(service()), None, [("Service", "shop", "web")], id="json"),
        pytest.param(
            "{apiVersion: v1, kind: ServiceAccount, metadata: {name: web.v1, labels: null, annotations: null}}",
            None,
            [("ServiceAccount", "default", "web.v1")],
            id="null-optional-fields-are-absent",
        ),
    ],
)
def test_valid_input(text: str, namespace: str | None, expect: list[tuple[str, str, str]]) -> None:
    resources = parse_manifests(text, SOURCE, namespace=namespace)
    assert [(r.kind, r.meta.namespace, r.meta.name) for r in resources] == expect


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = """
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, labels: &labels {app: web}}
    spec:
      selector: {matchLabels: *labels}
      template:
        metadata: {labels: {<<: *labels, tier: back}}
        spec: {containers: [{name: a, command: [x]}]}
    """.replace("\n    ", "\n")
    [d] = parse_manifests(text, SOURCE)
    assert isinstance(d, Deployment) and d.template.labels == (("app", "web"), ("tier", "back"))
    # Anchors belong to their document, as YAML says.
    assert problems("a: &x {name: shop}\n---\n{apiVersion: v1, kind: Namespace, metadata: *x}\n") == [
        f"f.yaml: document 1: kind: required ({ACCEPTED})",
        "f.yaml:3:45: document 2 (Namespace): metadata: alias *x refers to no anchor defined before it"
        " (an alias cannot refer to the mapping or list that contains it)",
        "f.yaml: document 2 (Namespace): metadata: required",
    ]


def test_scalars_follow_kubernetes_not_yaml_1_1_dates() -> None:
    d = changed(deployment(), "spec.template.spec.containers.0.env", [{"name": "DAY", "value": "X"}])
    text = to_yaml(d).replace("value: X", "value: 2024-01-31")
    [r] = parse_manifests(text, SOURCE)
    assert isinstance(r, Deployment) and r.template.containers[0].env == (("DAY", "2024-01-31"),)


def test_labels_parse_in_key_order_so_equal_manifests_are_equal() -> None:
    a = changed(namespace(), "metadata.labels", {"b": "2", "a": "1"})
    b = changed(namespace(), "metadata.labels", {"a": "1", "b": "2"})
    assert parse_objects([a], SOURCE) == parse_objects([b], SOURCE)


# --- invalid input: one mistake each, and the exact line that reports it ---------------------------

D = "f.yaml: document 1 (Deployment web): "
C = D + "spec.template.spec.containers[0]."
S = "f.yaml: document 1 (Service web): "
LOCAL = (
    "the local platform runs each container as a local process, so it needs the command to run (the image is ignored)"
)
LABEL_RULE = "must be a lowercase RFC 1123 label: a-z, 0-9 and '-', starting and ending with a letter or digit (e.g. 'my-name' or '123-abc')"
ACCEPTED = "Isthmus accepts Deployment, List, Namespace, Secret, Service, ServiceAccount"

Doc = Callable[[], dict[str, Any]]


def dep(path: str, value: object) -> Doc:
    return lambda: changed(deployment(), path, value)


def svc(path: str, value: object) -> Doc:
    return lambda: changed(service(), path, value)


CONTAINER = "spec.template.spec.containers.0"

INVALID = [
    pytest.param(
        dep("spec.replicas", "3"),
        D + 'spec.replicas: expected integer, got string "3" (remove the quotes)',
        id="replicas-string",
    ),
    pytest.param(
        dep("spec.replicas", 1001), D + "spec.replicas: must be between 0 and 1000, got 1001", id="replicas-too-many"
    ),
    pytest.param(
        dep("spec.replicas", -1), D + "spec.replicas: must be between 0 and 1000, got -1", id="replicas-negative"
    ),
    pytest.param(
        dep("spec.replicas", True), D + "spec.replicas: expected integer, got boolean true", id="replicas-boolean"
    ),
    pytest.param(dep("spec.replicas", 2.5), D + "spec.replicas: expected integer, got number 2.5", id="replicas-float"),
    pytest.param(
        dep("spec.replicas", 10**40),
        D + "spec.replicas: must be between 0 and 1000, got an integer with about 41 digits",
        id="replicas-huge",
    ),
    pytest.param(
        dep("spec.replicas", {"n": 1}), D + "spec.replicas: expected integer, got mapping", id="replicas-mapping"
    ),
    pytest.param(
        dep("spec.replica", 3), D + 'spec.replica: unknown field; did you mean "replicas"?', id="unknown-field-typo"
    ),
    pytest.param(
        dep(f"{CONTAINER}.imagePullPolicy", "Always"),
        C + "imagePullPolicy: unknown field (Isthmus supports here: args, command, env, image, name, ports)",
        id="unknown-field-container",
    ),
    pytest.param(
        dep("status", ["Running"]),
        D + "status: expected mapping, got list",
        id="status-not-mapping",
    ),
    pytest.param(
        dep("spec.strategy", {"type": "Recreate"}),
        D + "spec.strategy: not supported by Isthmus; only an empty value is accepted",
        id="strategy",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.1.containerPort", 70000),
        C + "ports[1].containerPort: must be between 1 and 65535, got 70000",
        id="container-port-range",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.0.containerPort", 0),
        C + "ports[0].containerPort: must be between 1 and 65535, got 0",
        id="container-port-zero",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.0.containerPort", DELETE),
        C + "ports[0].containerPort: required",
        id="container-port-missing",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.0.protocol", "tcp"),
        C + 'ports[0].protocol: must be TCP or UDP, got "tcp"',
        id="protocol-case",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.0.protocol", "SCTP"),
        C + "ports[0].protocol: SCTP is not supported; use TCP or UDP",
        id="protocol-sctp",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.0.name", "http-alternative"),
        C + 'ports[0].name: must be no more than 15 characters, got "http-alternative"',
        id="port-name-long",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.0.name", "8080"),
        C + 'ports[0].name: must contain at least one letter (a-z), got "8080"',
        id="port-name-digits",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.0.hostPort", 80),
        C + "ports[0].hostPort: unknown field (Isthmus supports here: containerPort, name, protocol)",
        id="host-port",
    ),
    pytest.param(
        dep(f"{CONTAINER}.ports.1.name", "http"),
        C + 'ports[1].name: duplicate port name "http" (also spec.template.spec.containers[0].ports[0])',
        id="port-name-duplicate",
    ),
    pytest.param(dep(f"{CONTAINER}.command", DELETE), C + f"command: required: {LOCAL}", id="command-missing"),
    pytest.param(dep(f"{CONTAINER}.command", []), C + f"command: must not be empty: {LOCAL}", id="command-empty"),
    pytest.param(
        dep(f"{CONTAINER}.command", "python -m x"),
        C + 'command: expected list, got string "python -m x"',
        id="command-string",
    ),
    pytest.param(
        dep(f"{CONTAINER}.command", ["sleep", 10]),
        C + "command[1]: expected string, got integer 10 (quote it to make it a string)",
        id="command-int",
    ),
    pytest.param(
        dep(f"{CONTAINER}.command", [""]),
        C + "command[0]: must name the program to run, got an empty string",
        id="command-empty-program",
    ),
    pytest.param(
        dep(f"{CONTAINER}.args", ["a\0b"]),
        C
        + 'args[0]: must not contain a NUL character (a process argument or environment value cannot hold one), got "a\\u0000b"',
        id="args-nul",
    ),
    pytest.param(
        dep(f"{CONTAINER}.env.0.valueFrom", {"secretKeyRef": {"name": "s"}}),
        C + "env[0].valueFrom: not supported by Isthmus; give the value literally with value",
        id="env-value-from",
    ),
    pytest.param(
        dep(f"{CONTAINER}.env.0.name", "1ST"),
        C
        + "env[0].name: must be letters, digits, '_', '-' and '.', not starting with a digit (e.g. 'MY_ENV.VAR' or 'my-env'), got \"1ST\"",
        id="env-name",
    ),
    pytest.param(
        dep(f"{CONTAINER}.env.0.value", 8080),
        C + "env[0].value: expected string, got integer 8080 (quote it to make it a string)",
        id="env-value-int",
    ),
    pytest.param(
        dep(f"{CONTAINER}.env.0", "MODE=demo"),
        C + 'env[0]: expected mapping, got string "MODE=demo"',
        id="env-not-mapping",
    ),
    pytest.param(dep(f"{CONTAINER}.name", "App"), C + f'name: {LABEL_RULE}, got "App"', id="container-name"),
    pytest.param(dep(f"{CONTAINER}.name", DELETE), C + "name: required", id="container-name-missing"),
    pytest.param(
        lambda: changed(
            deployment(),
            "spec.template.spec.containers",
            [{"name": "a", "command": ["x"]}, {"name": "a", "command": ["y"]}],
        ),
        D
        + 'spec.template.spec.containers[1].name: duplicate container name "a" (also spec.template.spec.containers[0])',
        id="container-name-duplicate",
    ),
    pytest.param(
        dep("spec.template.spec.containers", []),
        D + "spec.template.spec.containers: must not be empty: a Deployment runs at least one container",
        id="containers-empty",
    ),
    pytest.param(
        dep("spec.template.spec.containers", ["app"]),
        D + 'spec.template.spec.containers[0]: expected mapping, got string "app"',
        id="container-not-mapping",
    ),
    pytest.param(
        dep("spec.template.spec.containers", None),
        D + "spec.template.spec.containers: required: a Deployment runs at least one container",
        id="containers-null",
    ),
    pytest.param(
        dep("spec.template.spec.serviceAccountName", "Web"),
        D
        + "spec.template.spec.serviceAccountName: must be a lowercase RFC 1123 subdomain: a-z, 0-9, '-' and '.', starting and ending with a letter or digit (e.g. 'example.com'), got \"Web\"",
        id="service-account-name",
    ),
    pytest.param(
        dep("spec.selector.matchExpressions", [{"key": "app", "operator": "Exists"}]),
        D + "spec.selector.matchExpressions: not supported by Isthmus; select pods with matchLabels",
        id="match-expressions",
    ),
    pytest.param(
        dep("spec.selector.matchLabels", {}),
        D + "spec.selector.matchLabels: required: a Deployment selects its pods by at least one label",
        id="selector-empty",
    ),
    pytest.param(dep("spec.selector", DELETE), D + "spec.selector: required", id="selector-missing"),
    pytest.param(
        dep("spec.template.metadata.labels", {"app": "api"}),
        D
        + "spec.template.metadata.labels: selector does not match template labels: add app=web (from spec.selector.matchLabels)",
        id="selector-does-not-match",
    ),
    pytest.param(
        dep("spec.template.metadata", DELETE),
        D
        + "spec.template.metadata.labels: selector does not match template labels: add app=web (from spec.selector.matchLabels)",
        id="template-without-labels",
    ),
    pytest.param(
        dep("spec.template.metadata.annotations", {"isthmus.io/inject": "yes"}),
        D + 'spec.template.metadata.annotations["isthmus.io/inject"]: must be enabled or disabled, got "yes"',
        id="inject-annotation",
    ),
    pytest.param(
        dep("spec.template.metadata.annotations", {"isthmus.io/inject": True}),
        D
        + 'spec.template.metadata.annotations["isthmus.io/inject"]: expected string, got boolean true (quote it to make it a string)',
        id="inject-annotation-boolean",
    ),
    pytest.param(
        dep("metadata.annotations", {"config.isthmus.io/opaque-ports": "80,9000-8000"}),
        D
        + 'metadata.annotations["config.isthmus.io/opaque-ports"]: must be a comma-separated list of ports (1-65535) and ranges (low-high), e.g. 3306,8000-8100, got "80,9000-8000"',
        id="opaque-ports-range",
    ),
    pytest.param(
        dep("metadata.annotations", {"config.isthmus.io/opaque-ports": "80,,81"}),
        D
        + 'metadata.annotations["config.isthmus.io/opaque-ports"]: must be a comma-separated list of ports (1-65535) and ranges (low-high), e.g. 3306,8000-8100, got "80,,81"',
        id="opaque-ports-empty-entry",
    ),
    pytest.param(
        dep("metadata.annotations", {"x": "a" * (256 * 1024)}),
        D + "metadata.annotations: must be no more than 262144 bytes in total, got 262145",
        id="annotations-too-big",
    ),
    pytest.param(
        dep("metadata.labels", {"version": 1}),
        D + "metadata.labels.version: expected string, got integer 1 (quote it to make it a string)",
        id="label-value-int",
    ),
    pytest.param(
        dep("metadata.labels", {"version": None}),
        D + 'metadata.labels.version: expected string, got null (write "" for an empty value)',
        id="label-value-null",
    ),
    pytest.param(
        dep("metadata.labels", {"app": "x" * 64}),
        D + 'metadata.labels.app: must be no more than 63 characters, got "' + "x" * 60 + '"… (64 characters)',
        id="label-value-long",
    ),
    pytest.param(
        dep("metadata.labels", {"app": "-web"}),
        D
        + "metadata.labels.app: must be empty or A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit (e.g. 'MyValue' or 'my_value'), got \"-web\"",
        id="label-value-syntax",
    ),
    pytest.param(
        dep("metadata.labels", {"-app": "web"}),
        D
        + "metadata.labels[\"-app\"]: invalid key: name part must be A-Z, a-z, 0-9, '-', '_' or '.', starting and ending with a letter or digit (e.g. 'MyName', 'my.name' or '123-abc')",
        id="label-key-syntax",
    ),
    pytest.param(
        dep("metadata.labels", {"Example.com/app": "web"}),
        D
        + "metadata.labels[\"Example.com/app\"]: invalid key: prefix must be a lowercase RFC 1123 subdomain: a-z, 0-9, '-' and '.', starting and ending with a letter or digit (e.g. 'example.com')",
        id="label-key-prefix",
    ),
    pytest.param(
        dep("metadata.labels", {"a/b/c": "web"}),
        D
        + "metadata.labels[\"a/b/c\"]: invalid key: must be a name with at most one '/' prefix (e.g. 'app' or 'example.com/app')",
        id="label-key-slashes",
    ),
    pytest.param(
        dep("metadata.name", "web_1"),
        'f.yaml: document 1 (Deployment "web_1"): metadata.name: ' + LABEL_RULE + ', got "web_1"',
        id="name-syntax",
    ),
    pytest.param(
        dep("metadata.name", "w" * 64),
        'f.yaml: document 1 (Deployment "'
        + "w" * 40
        + '…"): metadata.name: must be no more than 63 characters, got "'
        + "w" * 60
        + '"… (64 characters)',
        id="name-long",
    ),
    pytest.param(
        dep("metadata.name", DELETE), "f.yaml: document 1 (Deployment): metadata.name: required", id="name-missing"
    ),
    pytest.param(
        dep("metadata.name", None), "f.yaml: document 1 (Deployment): metadata.name: required", id="name-null"
    ),
    pytest.param(
        dep("metadata.generateName", "web-"),
        D + "metadata.generateName: unknown field (Isthmus supports here: annotations, labels, name, namespace)",
        id="generate-name",
    ),
    pytest.param(
        dep("metadata.namespace", "Prod"), D + f'metadata.namespace: {LABEL_RULE}, got "Prod"', id="namespace-syntax"
    ),
    pytest.param(dep("metadata", DELETE), "f.yaml: document 1 (Deployment): metadata: required", id="metadata-missing"),
    pytest.param(
        dep("metadata", ["web"]),
        "f.yaml: document 1 (Deployment): metadata: expected mapping, got list",
        id="metadata-list",
    ),
    pytest.param(dep("spec", DELETE), D + "spec: required", id="spec-missing"),
    pytest.param(
        dep("apiVersion", "extensions/v1beta1"),
        D + 'apiVersion: Deployment is apps/v1, got string "extensions/v1beta1"',
        id="api-version-wrong",
    ),
    pytest.param(
        dep("apiVersion", DELETE), D + "apiVersion: required (Deployment is apps/v1)", id="api-version-missing"
    ),
    pytest.param(
        dep("kind", "Pod"),
        f'f.yaml: document 1 (Pod web): kind: unsupported kind "Pod"; {ACCEPTED}',
        id="kind-unsupported",
    ),
    pytest.param(dep("kind", DELETE), f"f.yaml: document 1 (web): kind: required ({ACCEPTED})", id="kind-missing"),
    pytest.param(
        dep("kind", ["Deployment"]), "f.yaml: document 1 (web): kind: expected string, got list", id="kind-list"
    ),
    pytest.param(
        svc("spec.type", "NodePort"), S + 'spec.type: only ClusterIP is supported, got "NodePort"', id="service-type"
    ),
    pytest.param(
        svc("spec.clusterIP", "None"),
        S
        + "spec.clusterIP: headless services (clusterIP: None) are not supported yet; remove clusterIP to get a virtual IP",
        id="headless",
    ),
    pytest.param(
        svc("spec.clusterIP", "10.0.0.1"),
        S + 'spec.clusterIP: is assigned by Isthmus; remove it (got "10.0.0.1")',
        id="cluster-ip",
    ),
    pytest.param(
        svc("spec.ports.1.name", DELETE),
        S + "spec.ports[1].name: required: a Service with several ports must name each",
        id="port-name-required",
    ),
    pytest.param(
        svc("spec.ports.1.name", "http"),
        S + 'spec.ports[1].name: duplicate port name "http" (also spec.ports[0])',
        id="service-port-name-duplicate",
    ),
    pytest.param(
        svc("spec.ports.1", {"name": "b", "port": 80}),
        S + "spec.ports[1].port: duplicate port 80/TCP (also spec.ports[0])",
        id="service-port-duplicate",
    ),
    pytest.param(
        svc("spec.ports.1.name", "DNS"),
        S + f'spec.ports[1].name: {LABEL_RULE}, got "DNS"',
        id="service-port-name-syntax",
    ),
    pytest.param(
        svc("spec.ports.0.port", 65536),
        S + "spec.ports[0].port: must be between 1 and 65535, got 65536",
        id="service-port-range",
    ),
    pytest.param(
        svc("spec.ports.0.port", "80"),
        S + 'spec.ports[0].port: expected integer, got string "80" (remove the quotes)',
        id="service-port-string",
    ),
    pytest.param(
        svc("spec.ports.0.targetPort", "8080"),
        S + 'spec.ports[0].targetPort: a port number must be an integer, got string "8080" (remove the quotes)',
        id="target-port-quoted",
    ),
    pytest.param(
        svc("spec.ports.0.targetPort", 0),
        S + "spec.ports[0].targetPort: must be between 1 and 65535, got 0",
        id="target-port-range",
    ),
    pytest.param(
        svc("spec.ports.0.targetPort", "HTTP"),
        S + "spec.ports[0].targetPort: must contain only a-z, 0-9 and '-', got \"HTTP\"",
        id="target-port-name",
    ),
    pytest.param(
        svc("spec.ports.0.targetPort", [8080]),
        S + "spec.ports[0].targetPort: expected port number or port name, got list",
        id="target-port-list",
    ),
    pytest.param(
        svc("spec.ports.0.nodePort", 30080),
        S + "spec.ports[0].nodePort: unknown field (Isthmus supports here: name, port, protocol, targetPort)",
        id="node-port",
    ),
    pytest.param(svc("spec.ports.0", None), S + "spec.ports[0]: expected mapping, got null", id="service-port-null"),
    pytest.param(
        svc("spec.ports", []),
        S + "spec.ports: must not be empty: a Service needs at least one port",
        id="service-ports-empty",
    ),
    pytest.param(
        svc("spec.ports", DELETE),
        S + "spec.ports: required: a Service needs at least one port",
        id="service-ports-missing",
    ),
    pytest.param(
        svc("spec.selector", {"app": ["web"]}),
        S + "spec.selector.app: expected string, got list",
        id="selector-value-list",
    ),
    pytest.param(
        svc("metadata.name", "1web"),
        "f.yaml: document 1 (Service 1web): metadata.name: must be a lowercase RFC 1035 label: a-z, 0-9 and '-', starting with a letter and ending with a letter or digit (e.g. 'my-name' or 'abc-123'), got \"1web\"",
        id="service-name-dns1035",
    ),
    pytest.param(
        lambda: changed(namespace(), "metadata.name", "a.b"),
        f'f.yaml: document 1 (Namespace a.b): metadata.name: {LABEL_RULE}, got "a.b"',
        id="namespace-name",
    ),
    pytest.param(
        lambda: changed(namespace(), "spec", {"finalizers": ["kubernetes"]}),
        "f.yaml: document 1 (Namespace shop): spec: not supported by Isthmus; only an empty value is accepted",
        id="namespace-spec",
    ),
    pytest.param(
        lambda: changed(service_account(), "automountServiceAccountToken", False),
        "f.yaml: document 1 (ServiceAccount web): automountServiceAccountToken: unknown field (Isthmus supports here: apiVersion, kind, metadata)",
        id="service-account-field",
    ),
    pytest.param(
        lambda: changed(service_account(), "metadata.name", "Web"),
        "f.yaml: document 1 (ServiceAccount Web): metadata.name: must be a lowercase RFC 1123 subdomain: a-z, 0-9, '-' and '.', starting and ending with a letter or digit (e.g. 'example.com'), got \"Web\"",
        id="service-account-name",
    ),
]


@pytest.mark.parametrize(("doc", "expect"), INVALID)
def test_invalid_manifest_reports_the_field(doc: Doc, expect: str) -> None:
    value = doc()
    assert expect in problems(to_yaml(value)), "from YAML"
    with pytest.raises(ManifestErrors) as info:  # already-decoded documents say the same
        parse_objects([value], SOURCE)
    assert expect in str(info.value).splitlines(), "from objects"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        pytest.param(
            to_yaml(service_account()).replace("name: web", 'name: web\n  annotations: {note: "\\ud800"}'),
            [
                "f.yaml: document 1 (ServiceAccount web): metadata.annotations.note:"
                ' must be valid Unicode text, without lone surrogates, got "\\ud800"'
            ],
            id="lone-surrogate",
        ),
        pytest.param(
            "- a\n- b\n",
            ["f.yaml: document 1: expected a mapping (a Kubernetes object with apiVersion and kind), got list"],
            id="list-document",
        ),
        pytest.param(
            "hello\n",
            [
                'f.yaml: document 1: expected a mapping (a Kubernetes object with apiVersion and kind), got string "hello"'
            ],
            id="scalar-document",
        ),
        pytest.param(
            "a: b\n---\n---\n42\n",
            [
                f"f.yaml: document 1: kind: required ({ACCEPTED})",
                "f.yaml: document 3: expected a mapping (a Kubernetes object with apiVersion and kind), got integer 42",
            ],
            id="numbering-counts-empty-documents",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a\n",
            [
                "f.yaml:4:1: document 1: invalid YAML: expected ',' or '}', but got '<stream end>' (while parsing a flow mapping)"
            ],
            id="syntax-error",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n\tlabels: {}\n",
            [
                "f.yaml:5:1: document 1: invalid YAML: found character '\\t' that cannot start any token (while scanning for the next token)"
            ],
            id="tab",
        ),
        pytest.param(
            "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n---\nkind: [\n",
            [
                "f.yaml:6:1: document 2: invalid YAML: expected the node content, but found '<stream end>' (while parsing a flow node)"
            ],
            id="syntax-error-later-document",
        ),
        pytest.param(
            "kind: Namespace\x07\n",
            ["f.yaml:1:16: document 1: invalid YAML: character U+0007 is not allowed"],
            id="control-character",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n",
            ["f.yaml:5:3: document 1 (Namespace a): metadata.name: duplicate key (first at line 4)"],
            id="duplicate-key",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {1: x}}\n",
            ["f.yaml:3:30: document 1 (Namespace a): metadata.labels: keys must be strings, got integer 1 (quote it)"],
            id="non-string-key",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: !!binary YQ==}\n",
            [
                'f.yaml:3:18: document 1 (Namespace "YQ=="): metadata.name: unsupported YAML tag "tag:yaml.org,2002:binary"',
                f'f.yaml: document 1 (Namespace "YQ=="): metadata.name: {LABEL_RULE}, got "YQ=="',
            ],
            id="yaml-tag",
        ),
        pytest.param(
            "a: &x [*x]\n",
            [
                "f.yaml:1:8: document 1: a[0]: alias *x refers to no anchor defined before it (an alias cannot refer to the mapping or list that contains it)",
                f"f.yaml: document 1: kind: required ({ACCEPTED})",
            ],
            id="recursive-alias",
        ),
        pytest.param(
            "[" * 100 + "]" * 100,
            ["f.yaml:1:65: document 1: [0][0][0][0][0][0][0][0]…[0][0][0][0]: nested more than 64 levels deep"],
            id="deep-nesting",
        ),
        pytest.param(
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcd", "bcde", strict=True)),
            ["f.yaml:5:36: document 1: e[7]: document too large: more than 100000 values (counting aliases expanded)"],
            id="alias-bomb",
        ),
        pytest.param(
            "replicas: " + "9" * 5000 + "\n",
            [
                "f.yaml:1:11: document 1: replicas: integer too large",
                f"f.yaml: document 1: kind: required ({ACCEPTED})",
            ],
            id="int-too-long",
        ),
        pytest.param(
            "{kind: List, apiVersion: v1, items: [{kind: List}]}",
            ["f.yaml: document 1 (List): items[0].kind: a List cannot contain another List"],
            id="nested-list",
        ),
        pytest.param(
            "{kind: List, items: {}}",
            [
                "f.yaml: document 1 (List): apiVersion: required: List is v1",
                "f.yaml: document 1 (List): items: expected list, got mapping",
            ],
            id="list-shape",
        ),
        pytest.param(
            to_yaml(
                {"apiVersion": "v1", "kind": "List", "items": [namespace(), changed(service(), "spec.ports.0.port", 0)]}
            ),
            ["f.yaml: document 1 (Service web): items[1].spec.ports[0].port: must be between 1 and 65535, got 0"],
            id="list-item-names-its-object",
        ),
        pytest.param(
            to_yaml(namespace(), {"apiVersion": "v1", "kind": "List", "items": [service(), namespace()]}),
            [
                'f.yaml: document 2 (Namespace shop): items[1].metadata.name: Namespace "shop" is already defined in document 1'
            ],
            id="defined-twice",
        ),
    ],
)
def test_invalid_yaml_and_documents(text: str, expect: list[str]) -> None:
    assert problems(text) == expect


def test_namespace_argument_must_agree_with_metadata() -> None:
    assert problems(to_yaml(service()), namespace="prod") == [
        'f.yaml: document 1 (Service web): metadata.namespace: is "shop" but the namespace given on the command line is "prod"; make them agree or leave one out'
    ]
    assert problems(to_yaml(namespace()), namespace="Prod") == [
        f'f.yaml: namespace "Prod" from the command line {LABEL_RULE}'
    ]


def test_all_problems_are_reported_at_once_in_input_order() -> None:
    text = to_yaml(
        changed(changed(deployment(), "spec.replicas", -1), f"{CONTAINER}.command", DELETE),
        changed(service(), "spec.type", "LoadBalancer"),
    )
    assert problems(text + "---\n[unclosed\n") == [
        D + "spec.replicas: must be between 0 and 1000, got -1",
        C + f"command: required: {LOCAL}",
        'f.yaml: document 2 (Service web): spec.type: only ClusterIP is supported, got "LoadBalancer"',
        "f.yaml:56:1: document 3: invalid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)",
    ]


def test_errors_carry_their_parts_and_render_on_one_line() -> None:
    with pytest.raises(ManifestErrors) as info:
        parse_manifests(to_yaml(dep(f"{CONTAINER}.ports.1.containerPort", 70000)()), "web.yaml")
    [error] = info.value.errors
    assert isinstance(info.value, IsthmusError) and isinstance(error, IsthmusError)
    assert (error.source, error.document, error.kind, error.name) == ("web.yaml", 1, "Deployment", "web")
    assert error.path == "spec.template.spec.containers[0].ports[1].containerPort"
    assert error.message == "must be between 1 and 65535, got 70000"
    assert str(error) == (
        "web.yaml: document 1 (Deployment web): spec.template.spec.containers[0].ports[1].containerPort:"
        " must be between 1 and 65535, got 70000"
    )
    weird = ManifestError("x.yaml", "bad\nvalue\u2028here", path="a")
    assert str(weird) == "x.yaml: a: bad\\u000avalue\\u2028here"


def test_many_problems_render_a_screenful() -> None:
    items = [changed(namespace(), "metadata.name", f"N{i}") for i in range(150)]
    with pytest.raises(ManifestErrors) as info:
        parse_objects(items, SOURCE)
    assert len(info.value.errors) == 150
    lines = str(info.value).splitlines()
    assert len(lines) == 101 and lines[-1] == "f.yaml: … and 50 more problems"


def test_oversized_input_is_refused_before_parsing() -> None:
    assert problems(" " * (MAX_TEXT_CHARS + 1)) == ["f.yaml: input is larger than 4 MiB; split it into several files"]


# --- back to manifests ---------------------------------------------------------------------------


@pytest.mark.parametrize("doc", [deployment, service, namespace, service_account], ids=lambda f: f.__name__)
def test_dump_round_trips(doc: Doc) -> None:
    [r] = parse_manifests(to_yaml(doc()), SOURCE)
    dumped = dump_resource(r)
    assert parse_objects([dumped], SOURCE) == [r]
    assert parse_manifests(yaml.safe_dump(dumped), SOURCE) == [r]  # sorted keys, as a store might write
    assert parse_manifests(json.dumps(dumped), SOURCE) == [r]


def test_dump_is_a_complete_manifest() -> None:
    [r] = parse_manifests(MINIMAL_DEPLOYMENT, SOURCE)
    assert dump_resource(r) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"serviceAccountName": "default", "containers": [{"name": "api", "command": ["./api"]}]},
            },
        },
    }


def test_every_kind_in_the_dispatch_table_dumps() -> None:
    for api_version, kind in KINDS:
        [r] = parse_objects([SAMPLES[kind]()], SOURCE)
        assert dump_resource(r)["apiVersion"] == api_version


def test_the_shipped_examples_parse() -> None:
    examples = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
    for example in examples:
        resources = parse_manifests(example.read_text(), str(example))
        assert resources and parse_objects([dump_resource(r) for r in resources], SOURCE) == resources
