"""A pod's processes see nothing of the mesh's state but their own: no issuer or anchor key, no token
secret, no other pod's token, no platform API. Otherwise any workload could mint any identity."""

from __future__ import annotations

import json
import shlex

from tests.platform.harness import Mesh, wait_for

PROBE = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: nosy}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: nosy}}}}
  template:
    metadata: {{labels: {{app: nosy}}}}
    spec:
      containers:
        - name: app
          command: ["sh", "-c", {script}]
"""


def test_a_pod_sees_only_its_own_corner_of_the_state_directory(demo_mesh: Mesh) -> None:
    home = demo_mesh.home
    web = demo_mesh.pods("web")[0]
    secrets = {
        "anchor key": home / "identity" / "trust-anchor.key",
        "issuer key": home / "clusters" / "local" / "identity" / "issuer.key",
        "token secret": home / "clusters" / "local" / "identity" / "token.key",
        "another pod's token": home / "pods" / "local" / "default" / web["name"] / "token",
        "platform API": home / "run" / "api.sock",
        "state database": home / "state.db",
    }
    public = {"trust bundle": home / "public" / "trust-bundle.pem"}
    for what, path in {**secrets, **public}.items():
        assert path.exists(), f"the test expects the {what} at {path}"
    checks = " ".join(
        f"if [ -e {shlex.quote(str(p))} ]; then echo SEEN {shlex.quote(w)}; else echo HIDDEN {shlex.quote(w)}; fi;"
        for w, p in {**secrets, **public}.items()
    )
    script = f"{checks} echo OWN-TOKEN $(test -r token && echo yes); echo DONE; sleep infinity"
    demo_mesh.apply(PROBE.format(script=json.dumps(script)))
    try:
        pod = demo_mesh.pod("nosy")
        log = ""

        def done() -> bool:
            nonlocal log
            log = demo_mesh.run("logs", pod).stdout
            return "DONE" in log

        wait_for(done, 30, "the probe pod to report")
        for what in secrets:
            assert f"HIDDEN {what}" in log, log
        assert "SEEN trust bundle" in log, log
        assert "OWN-TOKEN yes" in log, log
        # The pod's sidecar still works with the narrow view: it got a certificate and its config.
        shown = json.loads(demo_mesh.run("identity", "show", pod, "-o", "json").stdout)
        assert shown["spiffe_id"] == "spiffe://cluster.local/ns/default/sa/default"
    finally:
        demo_mesh.run("delete", "-f", "-", input=PROBE.format(script=json.dumps("true")))
