"""Malformed manifests thrown at apply: a clean error naming the input, and no change at all."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from isthmus.model.errors import IsthmusError
from isthmus.model.manifests import parse_manifests
from isthmus.platform.local.apply import plan_apply
from tests.model.manifest_samples import to_yaml
from tests.model.test_manifests_fuzz import mutated
from tests.platform.harness import Mesh

SOURCE = "fuzz input.yaml"


def fuzz(examples: int) -> settings:
    checks = [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ]
    return settings(max_examples=examples, deadline=None, suppress_health_check=checks)


@fuzz(1500)
@given(mutated())
def test_apply_plans_all_or_nothing(docs: list[Any]) -> None:
    text = to_yaml(*docs)
    try:
        plan = plan_apply({}, text, SOURCE, None)
    except IsthmusError as e:
        lines = str(e).splitlines()
        assert lines and all(SOURCE in line for line in lines)
        return
    # Nothing half-done: what is applied is exactly what the whole input parsed into.
    assert list(plan.put) == parse_manifests(text, SOURCE)


def _everything(mesh: Mesh) -> str:
    return json.dumps(
        [json.loads(mesh.run("get", kind, "-A", "-o", "json").stdout) for kind in ("ns", "sa", "deploy", "svc")]
    )


@pytest.fixture(scope="module")
def baseline(demo_mesh: Mesh) -> Iterator[tuple[Mesh, str]]:
    yield demo_mesh, _everything(demo_mesh)


@fuzz(40)
@given(docs=mutated())
def test_the_daemon_refuses_malformed_manifests_and_changes_nothing(
    baseline: tuple[Mesh, str], docs: list[Any]
) -> None:
    mesh, before = baseline
    text = to_yaml(*docs)
    try:
        parse_manifests(text, SOURCE)
        assume(False)  # a valid mutation would legitimately change the mesh; that is another test
    except IsthmusError:
        pass
    proc = mesh.run("apply", "-f", "-", input=text, check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("isthmus: ")
    assert _everything(mesh) == before
