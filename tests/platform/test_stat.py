"""`isthmus stat` on a running mesh: known traffic (rate, failure share, added latency) read back as golden
metrics per deployment, pod and service, within stated tolerances; and a sidecar that cannot be read."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.platform.harness import Mesh, wait_for

RATE = 20  # requests per second, open loop
LOAD_SECONDS = 45
FAIL_SHARE = 0.25  # whoami fails exactly every 4th request each pod serves
LATENCY_MS = 50  # added by whoami to every answer

# Tolerances. Rate: the 10 s window's span is measured between two sweeps, not between
# requests; 10% is several times what that costs. Success: each pod fails every 4th
# request exactly, so a window is off by at most one request per pod. Latency: Envoy's bins
# are 1 ms wide at 50 ms; above the app's 50 ms the server's sidecar adds little, the
# client's view adds the hop between the sidecars; the machine is shared, so the tails
# get room.
RATE_TOLERANCE = 0.10
SUCCESS_TOLERANCE = 0.04
SERVER_P50_MS = (LATENCY_MS, LATENCY_MS + 15)
CLIENT_P50_MS = (LATENCY_MS, LATENCY_MS + 30)
TAIL_MS = 1000

APPS = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: api, namespace: shop}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: shop}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      serviceAccountName: api
      containers:
        - name: whoami
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080",
                    "--fail-share", "{FAIL_SHARE}", "--latency-ms", "{LATENCY_MS}"]
          ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: shop}}
spec:
  selector: {{app: api}}
  ports: [{{port: 80, targetPort: http}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: caller, namespace: shop}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: caller}}}}
  template:
    metadata: {{labels: {{app: caller}}}}
    spec:
      containers:
        - name: sleep
          command: ["sleep", "infinity"]
"""


@dataclass
class Seen:
    """What stat said while the load ran, and what loadgen said after."""

    deploy: dict[str, Any]
    svc: dict[str, Any]
    pods: dict[str, Any]
    table: str
    load: dict[str, Any]


def stat_json(mesh: Mesh, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(mesh.run("stat", *args, "-n", "shop", "-o", "json").stdout)
    return data


def row(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [r for r in report["rows"] if r["name"] == name]
    return found


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh = Mesh(tmp_path_factory.mktemp("stat") / "home")
    try:
        mesh.run("up")
        mesh.apply(APPS)
        yield mesh
    finally:
        mesh.run("down", check=False)


@pytest.fixture(scope="module")
def seen(shop: Mesh) -> Seen:
    with shop.loadgen(shop.pod("caller"), "http://api.shop/", RATE, LOAD_SECONDS) as load:

        def load_visible() -> bool:
            return (row(stat_json(shop, "deploy", "-w", "10s"), "api")["requests"] or 0) > 0

        wait_for(load_visible, 30, "the control plane to see the load", interval=1)
        # A 10 s window ends at the latest sweep (at most 5 s old); 17 s after the load was first seen
        # the whole window lies inside the load, which runs on for a good while yet.
        time.sleep(17)
        deploy = stat_json(shop, "deploy", "-w", "10s")
        svc = stat_json(shop, "svc", "-w", "10s")
        pods = stat_json(shop, "pod", "-w", "10s")
        table = shop.run("stat", "deploy", "-n", "shop", "-w", "10s").stdout
        return Seen(deploy, svc, pods, table, load.report())


def assert_golden(figures: dict[str, Any], p50_range: tuple[float, float]) -> None:
    assert figures["rps"] == pytest.approx(RATE, rel=RATE_TOLERANCE), figures
    assert figures["success_rate"] == pytest.approx(1 - FAIL_SHARE, abs=SUCCESS_TOLERANCE), figures
    latency = figures["latency_ms"]
    assert p50_range[0] <= latency["p50"] <= p50_range[1], figures
    assert latency["p50"] <= latency["p95"] <= latency["p99"] < TAIL_MS, figures


def test_the_load_ran_as_configured(seen: Seen) -> None:
    load = seen.load
    assert load["total"] == RATE * LOAD_SECONDS and load["achieved_rate"] == pytest.approx(RATE, rel=0.05)
    assert load["failures"] == {"status_500": pytest.approx(load["total"] * FAIL_SHARE, abs=2)}
    assert load["latency_ms"]["p50"] >= LATENCY_MS


def test_deployments_report_rate_success_and_latency_as_servers(seen: Seen) -> None:
    assert (seen.deploy["kind"], seen.deploy["view"], seen.deploy["unscraped"]) == ("deploy", "server", [])
    assert seen.deploy["window"]["asked"] == 10 and 9 <= seen.deploy["window"]["covered"] <= 16
    api = row(seen.deploy, "api")
    assert api["meshed"] == {"ready": 2, "pods": 2}
    assert_golden(api, SERVER_P50_MS)
    assert api["tcp"]["open"] >= 1  # the caller's sidecar keeps connections to both pods
    caller = row(seen.deploy, "caller")
    assert (caller["requests"], caller["meshed"]) == (0, {"ready": 1, "pods": 1})


def test_services_report_what_their_clients_saw(seen: Seen) -> None:
    assert (seen.svc["view"], seen.svc["unscraped"]) == ("client", [])
    api = row(seen.svc, "api")
    assert api["meshed"] == {"ready": 2, "pods": 2}
    assert_golden(api, CLIENT_P50_MS)


def test_pods_add_up_to_their_deployment(seen: Seen) -> None:
    api_pods = [r for r in seen.pods["rows"] if r["name"].startswith("api-")]
    assert len(api_pods) == 2
    assert sum(r["rps"] for r in api_pods) == pytest.approx(RATE, rel=RATE_TOLERANCE)
    for r in api_pods:
        assert r["success_rate"] == pytest.approx(1 - FAIL_SHARE, abs=SUCCESS_TOLERANCE)


def test_the_table(seen: Seen) -> None:
    lines = [line.split() for line in seen.table.splitlines()]
    assert lines[0] == ["NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "TCP_CONN"]
    api = next(line for line in lines if line[0] == "api")
    assert api[1] == "2/2" and api[2].endswith("%") and api[3].endswith("rps") and api[4].endswith("ms")


def test_the_control_plane_serves_its_own_metrics(shop: Mesh, seen: Seen) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(shop.home / "run" / "cp-local-metrics.sock"))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK")
    values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line[:1] != "#"}
    # api (2 pods) and caller: each sidecar connected, got config and ACKed it, and got a certificate.
    assert values['isthmus_xds_proxies_connected{cluster="local"}'] == 3
    assert values['isthmus_xds_proxies_in_sync{cluster="local"}'] == 3
    assert values['isthmus_xds_pushes_total{cluster="local",type="Listener"}'] >= 3
    assert values['isthmus_xds_push_to_ack_seconds_count{cluster="local"}'] >= 3 * 4
    assert values['isthmus_identity_certificates_issued_total{cluster="local"}'] >= 3
    assert values['isthmus_viz_sweeps_total{cluster="local",result="done"}'] >= 2


def test_an_unreadable_sidecar_shows_as_such_and_the_table_still_shows(shop: Mesh, seen: Seen) -> None:
    blocked = sorted(p["name"] for p in shop.pods("api"))[0]
    # Refuse connections to that sidecar's admin API on the pod's loopback (where it is read); the
    # platform's probes come in on the pod's address and keep the pod ready.
    shop.exec(
        blocked, "iptables", "-I", "INPUT", "-i", "lo", "-p", "tcp", "--dport", "4191", "-j", "REJECT",
        "--reject-with", "tcp-reset",
    )  # fmt: skip

    def named() -> bool:
        return blocked in {u["pod"] for u in stat_json(shop, "pod", "-w", "10s")["unscraped"]}

    wait_for(named, 30, f"the sidecar of {blocked} to be reported unreadable", interval=1)
    proc = shop.run("stat", "pod", "-n", "shop", "-w", "10s")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()[1:]]
    assert sorted(names) == sorted(p["name"] for p in shop.pods()), proc.stdout
    assert f"warning: cannot read the sidecar of pod shop/{blocked} (" in proc.stderr
    unread = next(line.split() for line in proc.stdout.splitlines() if line.startswith(blocked))
    assert unread[2:] == ["-"] * 6
    deploy = stat_json(shop, "deploy", "-w", "10s")
    assert [u["pod"] for u in row(deploy, "api")["unscraped"]] == [blocked]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["deploy", "nope", "-n", "shop"], 'isthmus: deployment "nope" not found in namespace "shop"', id="name"
        ),
        pytest.param(["svc", "-n", "nope"], 'isthmus: namespace "nope" not found in cluster local', id="namespace"),
        pytest.param(["deploy", "--cluster", "nope"], "isthmus: no cluster named 'nope'", id="cluster"),
        pytest.param(["jobs"], 'isthmus: stat for "jobs"? use deploy, pod or svc', id="kind"),
        pytest.param(["deploy", "-w", "1h"], "isthmus: --window 1h is out of range", id="window"),
    ],
)
def test_bad_input_gets_one_line_and_a_non_zero_exit(shop: Mesh, args: list[str], message: str) -> None:
    proc = shop.run("stat", *args, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
