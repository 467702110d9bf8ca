"""Mesh settings chosen at `isthmus up`: the trust domain, and a workload certificate lifetime short
enough to watch sidecars renew under a request stream."""

from __future__ import annotations

import json

from tests.platform.harness import Mesh, wait_for

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers:
        - name: app
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080"]
          ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
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


def _cert(mesh: Mesh, pod: str) -> dict[str, object]:
    shown: dict[str, object] = json.loads(mesh.run("identity", "show", pod, "-o", "json").stdout)
    return shown


def test_short_lived_certificates_renew_under_load_in_the_chosen_trust_domain(fresh_home: Mesh) -> None:
    mesh = fresh_home
    mesh.run("up", "--trust-domain", "example.org", "--workload-cert-lifetime", "1m")
    mesh.apply(APP)
    web, client = mesh.pod("web"), mesh.pod("client")
    first = _cert(mesh, web)
    assert first["spiffe_id"] == "spiffe://example.org/ns/default/sa/web"
    assert 0 < int(first["remaining_seconds"]) <= 60  # type: ignore[call-overload]

    # Renewal at ~70% of a minute falls inside this stream; not one request may fail across it.
    with mesh.loadgen(client, "http://web/", 20, 50) as load:
        wait_for(lambda: _cert(mesh, web)["serial"] != first["serial"], 58, "the web sidecar to renew", 2)
        report = load.report()
    assert report["failures"] == {}, report
    assert report["successes"] == report["total"] >= 950
    seen = mesh.curl_json(client, "http://web/")["headers"]["x-isthmus-client-id"]
    assert seen == "spiffe://example.org/ns/default/sa/default"


def test_trust_domain_is_fixed_and_the_lifetime_changes_on_a_running_mesh(fresh_home: Mesh) -> None:
    mesh = fresh_home
    mesh.run("up", "--workload-cert-lifetime", "1m")
    mesh.apply(APP)
    web = mesh.pod("web")

    refused = mesh.run("up", "--trust-domain", "example.org", check=False)
    assert refused.returncode != 0
    assert "this mesh's trust domain is 'cluster.local'" in refused.stderr
    assert "isthmus down --purge" in refused.stderr
    for bad, problem in (("10x", "is not a duration"), ("10s", "out of range"), ("31d", "out of range")):
        out = mesh.run("up", "--workload-cert-lifetime", bad, check=False)
        assert out.returncode != 0 and problem in out.stderr, (bad, out.stderr)

    changed = mesh.run("up", "--workload-cert-lifetime", "2h")
    assert "control planes restarted" in changed.stderr + changed.stdout
    # The running sidecar's next renewal (within ~45 s) already gets the new lifetime.
    wait_for(lambda: int(_cert(mesh, web)["remaining_seconds"]) > 3600, 70, "a 2h certificate", 2)  # type: ignore[call-overload]
    assert _cert(mesh, web)["spiffe_id"] == "spiffe://cluster.local/ns/default/sa/web"

    # After a restart the mesh keeps the lifetime it was given last.
    mesh.run("down")
    mesh.run("up")
    mesh.apply(APP)
    wait_for(lambda: int(_cert(mesh, mesh.pod("web"))["remaining_seconds"]) > 3600, 30, "a 2h certificate", 2)  # type: ignore[call-overload]
