"""Valid manifests to start from, and helpers to change one field of them, for the manifest tests."""

from __future__ import annotations

import copy
from typing import Any

import yaml

SOURCE = "f.yaml"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web", "version": "v1"},
                    "annotations": {"config.isthmus.io/opaque-ports": "6379", "isthmus.io/inject": "enabled"},
                },
                "spec": {
                    "serviceAccountName": "web",
                    "containers": [
                        {
                            "name": "app",
                            "image": "ghcr.io/example/web:1",
                            "command": ["python", "-m", "http.server"],
                            "args": ["8080"],
                            "env": [{"name": "MODE", "value": "demo"}],
                            "ports": [
                                {"containerPort": 8080, "name": "http"},
                                {"containerPort": 6379, "name": "redis", "protocol": "TCP"},
                            ],
                        }
                    ],
                },
            },
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"},
            ],
        },
    }


def namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}}


def service_account() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "web", "namespace": "shop"}}


def secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "link-east", "namespace": "shop"},
        "type": "mirror.isthmus.io/link",
        "data": {"ca.crt": "LS0tLS1CRUdJTg=="},
        "stringData": {"credential": "s3cret"},
    }


SAMPLES = {
    "Deployment": deployment,
    "Service": service,
    "Namespace": namespace,
    "ServiceAccount": service_account,
    "Secret": secret,
}

DELETE = object()


def changed(doc: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A copy of `doc` with the field at a dotted path ("spec.ports.0.port") set, or removed with DELETE."""
    out = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return out


# libyaml's emitter when present: the property tests dump thousands of documents.
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def to_yaml(*docs: object) -> str:
    return yaml.dump_all(docs, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)
