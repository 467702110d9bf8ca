"""Traffic through the sidecars, as an app in a pod sees it: by service name, across replicas."""

from __future__ import annotations

import json

from tests.platform.harness import Mesh, wait_for


def test_http_by_service_name_reaches_every_replica(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    web_pods = {p["name"] for p in demo_mesh.pods("web")}
    assert len(web_pods) == 3
    seen = set()
    for _ in range(30):
        seen.add(demo_mesh.curl_json(client, "http://web/")["pod"])
        if seen == web_pods:
            break
    assert seen == web_pods


def test_every_name_form_resolves(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    for name in ("web", "web.default", "web.default.svc.cluster.local"):
        body = demo_mesh.curl_json(client, f"http://{name}/hello")
        assert body["path"] == "/hello"
        assert body["pod"].startswith("web-")


def test_requests_pass_through_envoy_over_mtls_with_the_callers_identity(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    headers = demo_mesh.curl_json(client, "http://web/")["headers"]
    assert "x-request-id" in headers  # Envoy's HTTP connection manager added it
    # The server's sidecar verified the caller's certificate and tells the app who it is.
    assert headers["x-isthmus-client-id"] == "spiffe://cluster.local/ns/default/sa/default"
    assert "By=spiffe://cluster.local/ns/default/sa/web" in headers["x-forwarded-client-cert"]
    assert "x-isthmus-orig-proto" not in headers


def test_a_forged_identity_header_is_replaced(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    out = demo_mesh.exec(
        client,
        "curl",
        "-sS",
        "--fail",
        "-m",
        "5",
        "-H",
        "x-isthmus-client-id: spiffe://cluster.local/ns/kube-system/sa/admin",
        "http://web/",
    ).stdout
    assert json.loads(out)["headers"]["x-isthmus-client-id"] == "spiffe://cluster.local/ns/default/sa/default"


def test_unknown_name_fails_fast(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    proc = demo_mesh.exec(client, "curl", "-sS", "-m", "5", "http://no-such-service/", check=False)
    assert proc.returncode == 6, proc.stderr  # curl: could not resolve host


def test_grpc_unary_and_streaming(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    unary = demo_mesh.exec(client, "python", "-m", "isthmus.apps.grpc_client", "echo-grpc:9090", "--say", "hi")
    assert unary.stdout.strip().endswith(": hi") and unary.stdout.startswith("echo-grpc-")
    stream = demo_mesh.exec(client, "python", "-m", "isthmus.apps.grpc_client", "echo-grpc:9090", "--count", "5")
    lines = stream.stdout.split()
    assert len(stream.stdout.strip().splitlines()) == 5
    assert lines[-1] == "5"


def test_tcp_echo(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    out = demo_mesh.exec(client, "python", "-m", "isthmus.apps.tcp_client", "echo-tcp", "7070", "--send", "hello mesh")
    assert out.stdout.strip() == "hello mesh"


def test_loadgen_spreads_across_replicas(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    out = demo_mesh.exec(
        client,
        "python",
        "-m",
        "isthmus.apps.loadgen",
        "http://web/",
        "--rate",
        "100",
        "--duration",
        "3",
        "--json",
        timeout=60,
    )
    report = json.loads(out.stdout)
    assert report["failures"] == {}, report["failures"]
    assert report["successes"] >= 290
    assert len(report["pods"]) == 3
    assert min(report["pods"].values()) > report["successes"] / 10


def test_killed_app_is_restarted(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    target = demo_mesh.pods("echo-tcp")[0]
    pid = target["containers"][0]["pid"]
    demo_mesh.exec(client, "kill", "-9", str(pid))
    wait_for(
        lambda: any(p["restarts"] >= 1 and p["ready"] for p in demo_mesh.pods("echo-tcp")),
        30,
        "the echo-tcp app to be restarted and ready",
    )
    out = demo_mesh.exec(client, "python", "-m", "isthmus.apps.tcp_client", "echo-tcp", "7070", "--send", "back")
    assert out.stdout.strip() == "back"


CHURN = """
apiVersion: v1
kind: Service
metadata: {name: web-alias}
spec:
  selector: {app: web}
  ports: [{port: 8000, targetPort: http}]
"""


def test_names_follow_services_as_they_come_and_go(demo_mesh: Mesh) -> None:
    client = demo_mesh.pod("client")
    missing = demo_mesh.exec(client, "curl", "-sS", "-m", "5", "http://web-alias:8000/", check=False)
    assert missing.returncode == 6  # no such name yet
    demo_mesh.apply(CHURN)
    wait_for(
        lambda: (
            demo_mesh.exec(client, "curl", "-sS", "--fail", "-m", "5", "http://web-alias:8000/", check=False).returncode
            == 0
        ),
        10,
        "the new service to be routable by name",
    )
    assert demo_mesh.curl_json(client, "http://web-alias.default:8000/")["pod"].startswith("web-")
    demo_mesh.run("delete", "-f", "-", input=CHURN)
    wait_for(
        lambda: demo_mesh.exec(client, "curl", "-sS", "-m", "5", "http://web-alias:8000/", check=False).returncode == 6,
        10,
        "the deleted service's name to stop resolving",
    )
