"""Bad input gets one clear line, a non-zero exit, and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.platform.harness import Mesh

HALF_BAD = """
apiVersion: v1
kind: Service
metadata: {name: fine}
spec:
  selector: {app: fine}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  replicas: "three"
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec:
      containers: [{name: app, command: ["sleep", "1"]}]
"""


def _one_line_error(proc: object) -> str:
    assert proc.returncode != 0  # type: ignore[attr-defined]
    err: str = proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err
    return err


def test_apply_is_all_or_nothing_and_names_file_object_and_field(demo_mesh: Mesh, tmp_path: Path) -> None:
    before = demo_mesh.run("get", "svc", "-o", "json").stdout
    manifest = tmp_path / "half-bad.yaml"
    manifest.write_text(HALF_BAD)
    err = _one_line_error(demo_mesh.run("apply", "-f", str(manifest), check=False))
    assert str(manifest) in err and "Deployment broken" in err and "spec.replicas" in err
    assert demo_mesh.run("get", "svc", "-o", "json").stdout == before


def test_missing_namespace_reference_is_refused(demo_mesh: Mesh) -> None:
    manifest = HALF_BAD.split("---")[0].replace("name: fine}", "name: fine, namespace: nowhere}")
    err = _one_line_error(demo_mesh.run("apply", "-f", "-", input=manifest, check=False))
    assert 'namespace "nowhere" does not exist' in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["get", "pods", "--cluster", "mars"], "no cluster named 'mars'", id="unknown-cluster"),
        pytest.param(["logs", "no-such-pod"], 'pod "no-such-pod" not found', id="missing-pod-logs"),
        pytest.param(["exec", "no-such-pod", "--", "true"], 'pod "no-such-pod" not found', id="missing-pod-exec"),
        pytest.param(["get", "gizmos"], 'unknown resource type "gizmos"', id="unknown-kind"),
        pytest.param(
            ["scale", "deployment", "nope", "--replicas", "2"], 'deployment "nope" not found', id="scale-missing"
        ),
        pytest.param(["scale", "deployment", "web", "--replicas", "-1"], "--replicas must be", id="scale-negative"),
        pytest.param(["apply", "-f", "/no/such/file.yaml"], "cannot read /no/such/file.yaml", id="missing-file"),
    ],
)
def test_bad_cli_input(demo_mesh: Mesh, args: list[str], expected: str) -> None:
    err = _one_line_error(demo_mesh.run(*args, check=False))
    assert expected in err
    assert len(err.strip().splitlines()) == 1


def test_commands_without_a_running_mesh_say_so(tmp_path: Path) -> None:
    idle = Mesh(tmp_path / "nothing-here")
    for args in (["get", "pods"], ["apply", "-f", "-"], ["exec", "x", "--", "true"]):
        err = _one_line_error(idle.run(*args, input="", check=False))
        assert "no local mesh is running" in err, err
    check = idle.run("check", "-o", "json", check=False)
    assert check.returncode == 1
    results = json.loads(check.stdout)
    assert any(not r["ok"] and "daemon" in r["name"] for r in results)


def test_bad_cluster_names_are_refused(tmp_path: Path) -> None:
    idle = Mesh(tmp_path / "h")
    err = _one_line_error(idle.run("up", "--clusters", "West_1", check=False))
    assert "cluster name 'West_1' is not valid" in err
    assert not (tmp_path / "h").exists()
