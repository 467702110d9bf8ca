"""Calls from one cluster to another through a mirror service applied by hand: a west pod's
plain `curl http://api-east/` goes west sidecar -> (outer mTLS) -> east gateway -> (the west
sidecar's own inner mTLS) -> east backend's sidecar -> app, which sees the west caller's
identity; opaque TCP goes the same way; a mirror of an unexported service fails cleanly."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.platform.harness import Mesh, wait_for
from tests.platform.test_lifecycle import SMALL

GATEWAY_ID = "spiffe://cluster.local/ns/isthmus-multicluster/sa/isthmus-gateway"
WEST_CLIENT_ID = "spiffe://cluster.local/ns/shop/sa/default"

# east: `api` (from SMALL) and `echo` are exported; `hidden` selects api's pods but is not.
EAST = """
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  labels: {mirror.isthmus.io/exported: "true"}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: hidden, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata:
      labels: {app: echo}
      annotations: {config.isthmus.io/opaque-ports: "2526"}
    spec:
      containers:
        - name: smtp-like
          command: ["python", "-m", "isthmus.apps.tcp_echo", "--port", "2526", "--banner", "220 east ready"]
          ports: [{containerPort: 2526}]
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: shop
  labels: {mirror.isthmus.io/exported: "true"}
spec:
  selector: {app: echo}
  ports: [{port: 26, targetPort: 2526}]
"""


def mirror(name: str, port: int, gateway: str, opaque: bool = False, backend: str = "default") -> str:
    """What the service mirror controller will write; here applied by hand."""
    extra = f'\n    config.isthmus.io/opaque-ports: "{port}"' if opaque else ""
    return f"""
apiVersion: v1
kind: Service
metadata:
  name: {name}-east
  namespace: shop
  labels: {{mirror.isthmus.io/mirrored-service: "true", mirror.isthmus.io/cluster-name: east}}
  annotations:
    mirror.isthmus.io/remote-gateway: "{gateway}:4143"
    mirror.isthmus.io/remote-gateway-identity: "{GATEWAY_ID}"
    mirror.isthmus.io/remote-identities: "spiffe://cluster.local/ns/shop/sa/{backend}"{extra}
spec:
  ports: [{{port: {port}, targetPort: {port}}}]
"""


@pytest.fixture(scope="module")
def calls_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh = Mesh(tmp_path_factory.mktemp("mc-calls") / "home")
    try:
        mesh.run("up", "--clusters", "west,east")
        mesh.apply(SMALL, "--cluster", "east")
        mesh.apply(EAST, "--cluster", "east")  # labels SMALL's `api`, adds `hidden` and `echo`
        mesh.apply(SMALL, "--cluster", "west")
        mesh.run("multicluster", "install", "--cluster", "east")
        gateway = _east_gateway(mesh)
        mirrors = [mirror("api", 80, gateway), mirror("echo", 26, gateway, opaque=True), mirror("hidden", 80, gateway)]
        mesh.apply("---".join(mirrors), "--cluster", "west")
        wait_for(lambda: _ready(mesh), 60, "east's pods and gateway, and west's client, to be ready")
        yield mesh
    finally:
        mesh.run("down", check=False)


def _east_gateway(mesh: Mesh) -> str:
    clusters = json.loads(mesh.run("status", "-o", "json").stdout)["clusters"]
    return str(next(c["gateway_wan_ip"] for c in clusters if c["name"] == "east"))


def _ready(mesh: Mesh) -> bool:
    east = mesh.pods(cluster="east")
    west = mesh.pods("client", cluster="west")
    return len(east) == 5 and all(p["ready"] for p in east) and len(west) == 1 and west[0]["ready"]


def _curl(mesh: Mesh, url: str) -> subprocess.CompletedProcess[str]:
    client = mesh.pod("client", cluster="west")
    argv = ["curl", "-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}", url]
    return mesh.run("exec", "--cluster", "west", client, "--", *argv, timeout=30, check=False)


def _first_success(mesh: Mesh, url: str, seconds: float = 30) -> str:
    """The body of the first 200 (config reaches the sidecar a moment after apply); bounded."""
    deadline, last = time.monotonic() + seconds, ""
    while time.monotonic() < deadline:
        out = _curl(mesh, url)
        body, _, code = out.stdout.rpartition("\n")
        if code == "200":
            return body
        last = out.stdout + out.stderr
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered 200: {last}")


def test_http_to_a_mirror_reaches_the_remote_backend_which_sees_the_caller(calls_mesh: Mesh) -> None:
    pods = set()
    for _ in range(6):
        body = json.loads(_first_success(calls_mesh, "http://api-east/"))
        assert body["cluster"] == "east" and body["pod"].startswith("api-")
        # Set by east's inbound sidecar from the certificate west's sidecar presented inside the tunnel.
        assert body["headers"]["x-isthmus-client-id"] == WEST_CLIENT_ID
        pods.add(body["pod"])
    assert pods


def test_opaque_tcp_to_a_mirror_reaches_the_remote_server(calls_mesh: Mesh) -> None:
    client = calls_mesh.pod("client", cluster="west")
    argv = ["python", "-m", "isthmus.apps.tcp_client", "echo-east", "26", "--expect-banner", "--send", "EHLO west"]
    out = ""
    for _ in range(20):  # bounded: config reaches the sidecar a moment after apply
        done = calls_mesh.run("exec", "--cluster", "west", client, "--", *argv, timeout=30, check=False)
        out = done.stdout + done.stderr
        if done.returncode == 0:
            break
        time.sleep(0.5)
    assert "220 east ready" in out and "EHLO west" in out, out


def test_a_mirror_of_an_unexported_service_fails_cleanly(calls_mesh: Mesh) -> None:
    _first_success(calls_mesh, "http://api-east/")  # the config is there; only the gateway says no
    started = time.monotonic()
    out = _curl(calls_mesh, "http://hidden-east/")
    assert out.stdout.rpartition("\n")[2] == "503", out
    assert time.monotonic() - started < 10


def test_the_caller_checks_the_backends_identity_end_to_end(calls_mesh: Mesh) -> None:
    gateway = _east_gateway(calls_mesh)
    calls_mesh.apply(mirror("api", 80, gateway, backend="someone-else"), "--cluster", "west")
    try:
        deadline, code = time.monotonic() + 30, ""
        while time.monotonic() < deadline and code != "503":
            code = _curl(calls_mesh, "http://api-east/").stdout.rpartition("\n")[2]
            time.sleep(0.5)
        assert code == "503", "west's sidecar must refuse a backend that presents another identity"
    finally:
        calls_mesh.apply(mirror("api", 80, gateway), "--cluster", "west")
    _first_success(calls_mesh, "http://api-east/")
