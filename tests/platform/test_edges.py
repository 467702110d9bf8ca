"""`isthmus edges` on a running mesh: known traffic from a meshed and an unmeshed client, read back as edges
with the identities each side proved and whether the connections were mTLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.platform.harness import Mesh, wait_for

APPS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: api, namespace: shop}
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
      serviceAccountName: api
      containers:
        - name: whoami
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080"]
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ledger, namespace: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: ledger}}
  template:
    metadata:
      labels: {app: ledger}
      annotations: {config.isthmus.io/opaque-ports: "7070"}
    spec:
      serviceAccountName: ledger
      containers:
        - name: tcp
          command: ["python", "-m", "isthmus.apps.tcp_echo", "--port", "7070"]
          ports: [{containerPort: 7070}]
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: shop}
spec:
  selector: {app: ledger}
  ports: [{port: 7070, targetPort: 7070}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: caller, namespace: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: caller, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: caller}}
  template:
    metadata: {labels: {app: caller}}
    spec:
      serviceAccountName: caller
      containers:
        - name: sleep
          command: ["sleep", "infinity"]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: outsider, namespace: shop}
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
API_ID = "spiffe://cluster.local/ns/shop/sa/api"
CALLER_ID = "spiffe://cluster.local/ns/shop/sa/caller"
LEDGER_ID = "spiffe://cluster.local/ns/shop/sa/ledger"
MESHED_REQUESTS, OUTSIDE_REQUESTS = 6, 4


def _curl_times(mesh: Mesh, pod: str, n: int, url: str) -> None:
    """n requests, one connection each from the app, each bounded to 5 s; stops at the first failure."""
    loop = f'for i in $(seq {n}); do curl -sS --fail -m 5 -o /dev/null "{url}" || exit 1; done'
    mesh.exec(pod, "sh", "-c", loop, timeout=60)


def _edges(mesh: Mesh, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(mesh.run("edges", "-n", "shop", "-o", "json", *args).stdout)
    return found


def _one(edges: list[dict[str, Any]], source: str | None, destination: str) -> dict[str, Any]:
    matching = [
        e for e in edges if e["source"]["deployment"] == source and e["destination"]["deployment"] == destination
    ]
    assert len(matching) == 1, json.dumps(edges, indent=1)
    return matching[0]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """Its own mesh, so that the figures are exactly the traffic the fixture sends."""
    mesh = Mesh(tmp_path_factory.mktemp("edges") / "home")
    try:
        mesh.run("up")
        mesh.apply(APPS)
        caller, outsider = mesh.pod("caller"), mesh.pod("outsider")
        _curl_times(mesh, caller, MESHED_REQUESTS, "http://api/")
        _curl_times(mesh, outsider, OUTSIDE_REQUESTS, "http://api.shop/")
        mesh.exec(caller, "python", "-m", "isthmus.apps.tcp_client", "--send", "hello", "ledger", "7070")
        yield mesh
    finally:
        mesh.run("down", check=False)


def test_meshed_and_unmeshed_clients_show_with_their_identities_and_mtls(shop: Mesh) -> None:
    def settled() -> bool:
        edges = _edges(shop)["edges"]
        to_api = sum(int(e["requests"]) for e in edges if e["destination"]["deployment"] == "api")
        return to_api == MESHED_REQUESTS + OUTSIDE_REQUESTS

    wait_for(settled, 15, "the requests sent to show in the sidecars' counters", interval=0.5)
    report = _edges(shop)
    assert report["unscraped"] == [] and report["level"] == "deploy" and report["cluster"] == "local"
    edges = report["edges"]

    meshed = _one(edges, "caller", "api")
    assert (meshed["mtls"], meshed["transport"]) == (True, "mtls")
    assert (meshed["client_id"], meshed["server_id"], meshed["service"]) == (CALLER_ID, API_ID, "api")
    assert meshed["requests"] == MESHED_REQUESTS and meshed["connections"] >= 1
    assert meshed["source"] == {"namespace": "shop", "deployment": "caller", "pod": None, "meshed": True}
    # The client identity is the certificate its sidecar serves with right now.
    caller = shop.pod("caller")
    shown = json.loads(shop.run("identity", "show", caller, "-o", "json").stdout)
    assert shown["spiffe_id"] == meshed["client_id"]

    outside = _one(edges, None, "api")
    assert outside["source"] == {"namespace": None, "deployment": None, "pod": None, "meshed": False}
    assert (outside["mtls"], outside["client_id"], outside["server_id"]) == (False, None, None)
    assert (outside["requests"], outside["connections"], outside["service"]) == (
        OUTSIDE_REQUESTS,
        OUTSIDE_REQUESTS,
        "api",
    )

    tcp = _one(edges, "caller", "ledger")
    assert (tcp["mtls"], tcp["client_id"], tcp["server_id"]) == (True, CALLER_ID, LEDGER_ID)
    assert (tcp["connections"], tcp["requests"]) == (1, 0)
    assert len(edges) == 3, json.dumps(edges, indent=1)


def test_the_table_and_the_pod_level(shop: Mesh) -> None:
    rows = [line.split() for line in shop.run("edges", "-n", "shop").stdout.splitlines()]
    assert rows[0] == ["SOURCE", "DESTINATION", "SERVICE", "CLIENT-ID", "SERVER-ID", "MTLS", "CONNS", "REQS"]
    assert rows[1][:6] == ["caller", "api", "api", CALLER_ID, API_ID, "yes"]
    assert rows[-1][:6] == ["(unmeshed)", "api", "api", "<none>", "<none>", "no"]

    pods = _edges(shop, "pod")["edges"]
    api_pods = {p["name"] for p in shop.pods("api")}
    to_api = [e for e in pods if e["destination"]["deployment"] == "api"]
    assert {e["destination"]["pod"] for e in to_api} <= api_pods
    assert sum(e["requests"] for e in to_api if e["mtls"]) == MESHED_REQUESTS
    caller = shop.pod("caller")
    assert all(e["source"]["pod"] == caller for e in to_api if e["mtls"])
    # Outside the namespace asked for, names carry theirs.
    everywhere = shop.run("edges", "-A").stdout
    assert "shop/caller" in everywhere and "shop/api" in everywhere


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["-n", "nope"], 'isthmus: namespace "nope" not found in cluster local', id="namespace"),
        pytest.param(["--cluster", "nope"], "isthmus: no cluster named 'nope'", id="cluster"),
        pytest.param(["services"], 'isthmus: edges between "services"?', id="level"),
    ],
)
def test_unknown_names_get_one_line_and_a_non_zero_exit(shop: Mesh, args: list[str], message: str) -> None:
    proc = shop.run("edges", *args, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
