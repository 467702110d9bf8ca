"""Multi-cluster networking on the local platform: clusters share only the wan, which holds
nodes and gateways; pod networks never route to each other and may overlap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.harness import Mesh, host_network_state, processes_mentioning, wait_for
from tests.platform.test_lifecycle import SMALL

# Pods without a sidecar: what they reach is what the network lets through, with no Envoy
# accepting on everyone's behalf.
PROBE = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: probe, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: probe}}
  template:
    metadata:
      labels: {app: probe}
      annotations: {isthmus.io/inject: disabled}
    spec:
      containers:
        - name: sleep
          command: ["sleep", "infinity"]
"""

# Bounded: one attempt per address, one second each.
CONNECT = """
import socket, sys
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=1.0).close()
        result = "open"
    except TimeoutError:
        result = "timeout"
    except OSError as e:
        result = type(e).__name__
    print(target, result)
"""


def _probe(mesh: Mesh, cluster: str, script: Path, targets: list[str]) -> dict[str, str]:
    pod = mesh.pod("probe", cluster=cluster)
    out = mesh.run("exec", "--cluster", cluster, pod, "--", "python", str(script), *targets, timeout=60).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def _status(mesh: Mesh) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(mesh.run("status", "-o", "json").stdout)["clusters"]}


@pytest.fixture(scope="module")
def two_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh = Mesh(tmp_path_factory.mktemp("mc-net") / "home")
    try:
        mesh.run("up", "--clusters", "west,east")
        for cluster in ("west", "east"):
            mesh.apply(SMALL + "---" + PROBE, "--cluster", cluster)
        yield mesh
    finally:
        mesh.run("down", check=False)


def test_a_west_pod_reaches_no_address_of_east(two_clusters: Mesh, tmp_path: Path) -> None:
    mesh = two_clusters
    script = tmp_path / "connect.py"
    script.write_text(CONNECT)
    status = _status(mesh)
    east_pods = [p["ip"] for p in mesh.pods(cluster="east") if p["phase"] == "Running"]
    east_api = [p["ip"] for p in mesh.pods("api", cluster="east") if p["phase"] == "Running"]
    services = json.loads(mesh.run("get", "svc", "-A", "-o", "json", "--cluster", "east").stdout)["items"]
    east_vip = next(s["spec"]["clusterIP"] for s in services if s["metadata"]["name"] == "api")
    targets = [f"{ip}:8080" for ip in east_api] + [f"{ip}:4191" for ip in east_pods]
    targets += [f"{east_vip}:80", f"{status['east']['node_ip']}:53", f"{status['east']['wan_ip']}:53"]

    # The control: inside east, the same addresses answer.
    inside = _probe(mesh, "east", script, [f"{ip}:8080" for ip in east_api])
    assert set(inside.values()) == {"open"}, inside

    from_west = _probe(mesh, "west", script, targets)
    assert len(from_west) == len(targets)
    assert "open" not in from_west.values(), from_west
    # And through the sidecar of a meshed west pod, a request to an east pod gets nowhere either.
    client = mesh.pod("client", cluster="west")
    curl = mesh.run(
        "exec", "--cluster", "west", client, "--", "curl", "-sS", "-m", "3", f"http://{east_api[0]}:8080/", check=False
    )
    assert curl.returncode != 0, curl.stdout


def test_overlapping_pod_networks_both_work_and_down_or_kill_9_leave_nothing(
    fresh_home: Mesh, host_before: dict[str, str]
) -> None:
    mesh = fresh_home
    mesh.run("up", "--clusters", "west,east", "--pod-cidr", "east=10.16.0.0/16")
    status = _status(mesh)
    assert status["west"]["pod_cidr"] == status["east"]["pod_cidr"] == "10.16.0.0/16"
    for cluster in ("west", "east"):
        mesh.apply(SMALL, "--cluster", cluster)

    def serves(cluster: str) -> None:
        client = mesh.pod("client", cluster=cluster)
        out = mesh.run(
            "exec", "--cluster", cluster, client, "--", "curl", "-sS", "--fail", "-m", "5", "http://api.shop/"
        )
        own = {p["name"] for p in mesh.pods("api", cluster=cluster)}
        assert json.loads(out.stdout)["pod"] in own  # answered inside its own cluster, same addresses or not

    for cluster in ("west", "east"):
        serves(cluster)
    west_ips = {p["ip"] for p in mesh.pods(cluster="west")}
    assert west_ips & {p["ip"] for p in mesh.pods(cluster="east")}, "the clusters should share pod addresses"

    mesh.run("down")
    assert host_network_state() == host_before
    assert processes_mentioning(str(mesh.home)) == []

    mesh.run("up")
    assert _status(mesh)["east"]["pod_cidr"] == "10.16.0.0/16"  # kept with the cluster
    mesh.kill9()
    wait_for(lambda: processes_mentioning(str(mesh.home)) == [], 20, "every mesh process to be gone")
    assert host_network_state() == host_before


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        pytest.param("east=8.8.0.0/16", "must be private", id="public"),
        pytest.param("east=10.96.0.0/16", "overlaps 10.96.0.0/11", id="service-range"),
        pytest.param("east=10.16.0.0/24", "from /8 to /23", id="too-small"),
        pytest.param("east=10.16.0.1/16", "not an IPv4 network", id="host-bits"),
        pytest.param("north=10.16.0.0/16", "which this `up` does not start", id="unknown-cluster"),
        pytest.param("10.16.0.0/16", "CLUSTER=CIDR", id="no-cluster"),
    ],
)
def test_a_bad_pod_cidr_is_refused_before_anything_starts(fresh_home: Mesh, flag: str, message: str) -> None:
    proc = fresh_home.run("up", "--clusters", "west,east", "--pod-cidr", flag, check=False)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (fresh_home.home / "run" / "daemon.pid").exists()
