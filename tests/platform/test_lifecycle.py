"""The mesh's life: scaling and control-plane restarts under load, teardown, kill -9 and recovery."""

from __future__ import annotations

import json
import time

from tests.platform.harness import Mesh, host_network_state, processes_mentioning, wait_for

SMALL = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: app
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080"]
          ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers:
        - name: sleep
          command: ["sleep", "infinity"]
"""


def _ready(mesh: Mesh, deployment: str, n: int) -> bool:
    pods = [p for p in mesh.pods(deployment) if p["phase"] == "Running"]
    return len(pods) == n and all(p["ready"] for p in pods)


def test_scaling_1_3_1_under_a_steady_stream_loses_no_request(demo_mesh: Mesh) -> None:
    demo_mesh.run("scale", "deployment", "web", "--replicas", "1")
    wait_for(lambda: _ready(demo_mesh, "web", 1) and len(demo_mesh.pods("web")) == 1, 30, "web at 1 replica")
    client = demo_mesh.pod("client")
    with demo_mesh.loadgen(client, "http://web/", 50, 14) as load:
        time.sleep(2)
        demo_mesh.run("scale", "deployment", "web", "--replicas", "3")
        wait_for(lambda: _ready(demo_mesh, "web", 3), 30, "web at 3 replicas")
        time.sleep(3)
        demo_mesh.run("scale", "deployment", "web", "--replicas", "1")
        wait_for(lambda: len(demo_mesh.pods("web")) == 1, 30, "web back at 1 replica")
        report = load.report()
    assert report["failures"] == {}, report
    assert report["successes"] == report["total"] >= 600
    assert len(report["pods"]) == 3, "the stream should have reached the replicas that came and went"
    demo_mesh.run("scale", "deployment", "web", "--replicas", "3")
    wait_for(lambda: _ready(demo_mesh, "web", 3), 30, "web back at 3 replicas")


def test_control_plane_restart_under_load_loses_no_request(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    with demo_mesh.loadgen(client, "http://web/", 50, 10) as load:
        time.sleep(2)
        demo_mesh.run("controlplane", "restart")
        time.sleep(1)
        wait_for(
            lambda: demo_mesh.run("check", check=False).returncode == 0,
            30,
            "sidecars to reconnect to the new control plane",
        )
        report = load.report()
    assert report["failures"] == {}, report
    assert report["successes"] == report["total"] >= 450
    # The restarted control plane serves changes again: a new service becomes routable.
    check = json.loads(demo_mesh.run("check", "-o", "json").stdout)
    assert all(r["ok"] for r in check)


def test_down_leaves_nothing_on_the_host(fresh_home: Mesh, host_before: dict[str, str]) -> None:
    fresh_home.run("up")
    fresh_home.apply(SMALL)
    assert fresh_home.curl_json(fresh_home.pod("client"), "http://api.shop/")["pod"].startswith("api-")
    fresh_home.run("down")
    assert host_network_state() == host_before
    assert processes_mentioning(str(fresh_home.home)) == []


def test_kill_9_leaves_nothing_and_up_brings_everything_back(fresh_home: Mesh, host_before: dict[str, str]) -> None:
    fresh_home.run("up", "--clusters", "west,east")
    fresh_home.apply(SMALL, "--cluster", "west")
    services_before = json.loads(fresh_home.run("get", "svc", "-A", "-o", "json", "--cluster", "west").stdout)["items"]
    fresh_home.kill9()
    wait_for(lambda: processes_mentioning(str(fresh_home.home)) == [], 20, "every mesh process to be gone")
    assert host_network_state() == host_before

    down = fresh_home.run("get", "pods", check=False)
    assert down.returncode != 0 and "no local mesh is running" in down.stderr

    fresh_home.run("up")
    status = json.loads(fresh_home.run("status", "-o", "json").stdout)
    assert [c["name"] for c in status["clusters"]] == ["west", "east"]
    fresh_home.run("apply", "-f", "-", "--cluster", "west", "--wait", input=SMALL)  # unchanged objects: only waits
    services_after = json.loads(fresh_home.run("get", "svc", "-A", "-o", "json", "--cluster", "west").stdout)["items"]
    assert services_after == services_before  # same objects, same cluster IPs
    client = fresh_home.pod("client", cluster="west")
    out = fresh_home.run(
        "exec", "--cluster", "west", client, "--", "curl", "-sS", "--fail", "-m", "5", "http://api.shop/"
    ).stdout
    assert json.loads(out)["pod"].startswith("api-")
