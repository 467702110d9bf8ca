"""Protocols the mesh must carry without the app knowing: server-speaks-first TCP, opaque ports,
and clients outside the mesh."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.platform.harness import Mesh

EXTRA = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: banner}
spec:
  replicas: 1
  selector: {matchLabels: {app: banner}}
  template:
    metadata: {labels: {app: banner}}
    spec:
      containers:
        - name: smtp-like
          command: ["python", "-m", "isthmus.apps.tcp_echo", "--port", "2525", "--banner", "220 banner ready"]
          ports: [{containerPort: 2525}]
---
apiVersion: v1
kind: Service
metadata: {name: banner}
spec:
  selector: {app: banner}
  ports: [{port: 25, targetPort: 2525}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: banner-opaque}
spec:
  replicas: 1
  selector: {matchLabels: {app: banner-opaque}}
  template:
    metadata:
      labels: {app: banner-opaque}
      annotations: {config.isthmus.io/opaque-ports: "2526"}
    spec:
      containers:
        - name: smtp-like
          command: ["python", "-m", "isthmus.apps.tcp_echo", "--port", "2526", "--banner", "220 opaque ready"]
          ports: [{containerPort: 2526}]
---
apiVersion: v1
kind: Service
metadata: {name: banner-opaque}
spec:
  selector: {app: banner-opaque}
  ports: [{port: 26, targetPort: 2526}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: outsider}
spec:
  replicas: 1
  selector: {matchLabels: {app: outsider}}
  template:
    metadata:
      labels: {app: outsider}
      annotations: {isthmus.io/inject: disabled}
    spec:
      containers:
        - name: sleep
          command: ["sleep", "infinity"]
"""


@pytest.fixture(scope="module")
def mesh(demo_mesh: Mesh) -> Iterator[Mesh]:
    demo_mesh.apply(EXTRA)
    try:
        yield demo_mesh
    finally:
        demo_mesh.run("delete", "-f", "-", input=EXTRA, check=False)


def test_server_speaks_first_works_on_a_port_not_marked_opaque(mesh: Mesh) -> None:
    client = mesh.pod("client")
    out = mesh.exec(
        client, "python", "-m", "isthmus.apps.tcp_client", "banner", "25", "--expect-banner", "--send", "EHLO x"
    )
    assert "220 banner ready" in out.stdout
    assert "EHLO x" in out.stdout


def test_server_speaks_first_on_an_opaque_port(mesh: Mesh) -> None:
    client = mesh.pod("client")
    out = mesh.exec(
        client, "python", "-m", "isthmus.apps.tcp_client", "banner-opaque", "26", "--expect-banner", "--send", "EHLO y"
    )
    assert "220 opaque ready" in out.stdout
    assert "EHLO y" in out.stdout


def test_pod_without_sidecar_runs_unmeshed_and_reaches_services(mesh: Mesh) -> None:
    [outsider] = mesh.pods("outsider")
    assert outsider["sidecar"] is None
    seen = set()
    for _ in range(20):
        out = mesh.exec(outsider["name"], "curl", "-sS", "--fail", "-m", "5", "http://web/").stdout
        seen.add(json.loads(out)["pod"])
    assert len(seen) > 1, "a client outside the mesh should still be spread across replicas"
    # It arrived through the server's inbound sidecar, which adds a request id.
    out = mesh.exec(outsider["name"], "curl", "-sS", "--fail", "-m", "5", "http://web/").stdout
    assert "x-request-id" in json.loads(out)["headers"]
