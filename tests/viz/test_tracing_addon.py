"""The tracing add-on's manifests and the add-on machinery's pure parts (status, shared namespace, names)."""

from __future__ import annotations

import re

import pytest

from isthmus.cli.addons import ADDONS, ClusterObjects, addon_named, addon_status, namespace_in_use, render_list
from isthmus.cli.errors import CliError
from isthmus.model.resources import (
    ANNOTATION_INJECT,
    TRACE_COLLECTOR_NAMESPACE,
    Deployment,
    Service,
    TracingSettings,
    resource_key,
    trace_collector,
)
from isthmus.viz.tracing.manifests import COLLECTOR, OTLP_GRPC_PORT

TRACING = ADDONS["tracing"]


def test_the_manifests_make_a_collector_without_sidecar_behind_the_service_that_turns_tracing_on() -> None:
    objects = TRACING.objects()
    assert [r.kind for r in objects] == ["Namespace", "ServiceAccount", "Deployment", "Service"]
    (deployment,) = [r for r in objects if isinstance(r, Deployment)]
    # No sidecar: its own traffic is never traced (no loop through a sidecar to itself).
    assert dict(deployment.template.annotations)[ANNOTATION_INJECT] == "disabled"
    (container,) = deployment.template.containers
    assert container.command[:3] == ("python", "-m", "isthmus.viz.tracing")
    services = [r for r in objects if isinstance(r, Service)]
    assert trace_collector(services) == TracingSettings(TRACE_COLLECTOR_NAMESPACE, COLLECTOR, OTLP_GRPC_PORT)


def _found(*keys: tuple[str, str, str], ready: bool = True) -> ClusterObjects:
    deployment = ("Deployment", TRACE_COLLECTOR_NAMESPACE, COLLECTOR)
    return ClusterObjects(frozenset(keys), {deployment: ready} if deployment in keys else {})


def test_status_is_read_from_the_objects_a_cluster_has() -> None:
    own = [resource_key(r) for r in TRACING.own()]
    assert addon_status(TRACING, _found()) == "disabled"
    assert addon_status(TRACING, _found(("Namespace", "", TRACE_COLLECTOR_NAMESPACE))) == "disabled"
    assert addon_status(TRACING, _found(*own[:1])) == "partly enabled"
    assert addon_status(TRACING, _found(*own, ready=False)) == "starting"
    assert addon_status(TRACING, _found(*own)) == "enabled"


def test_the_namespace_goes_only_when_nothing_else_is_in_it() -> None:
    default_account = {"metadata": {"name": "default", "namespace": TRACE_COLLECTOR_NAMESPACE}}
    other = {"metadata": {"name": "prometheus", "namespace": TRACE_COLLECTOR_NAMESPACE}}
    elsewhere = {"metadata": {"name": "web", "namespace": "shop"}}
    assert not namespace_in_use(
        {"serviceaccounts": [default_account], "services": [elsewhere]}, TRACE_COLLECTOR_NAMESPACE
    )
    assert namespace_in_use({"deployments": [other]}, TRACE_COLLECTOR_NAMESPACE)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("jaeger", 'unknown add-on "jaeger" (add-ons: tracing)', id="unknown"),
        pytest.param("prometheus", "prometheus and dashboards are to come", id="to-come"),
    ],
)
def test_an_unknown_add_on_is_one_clear_error(name: str, message: str) -> None:
    with pytest.raises(CliError, match=re.escape(message)):
        addon_named(name)


def test_the_list_names_each_add_on_per_cluster() -> None:
    out = render_list([("tracing", "east", "enabled"), ("tracing", "west", "disabled")])
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "CLUSTER", "STATUS", "DESCRIPTION"]
    assert lines[1].split()[:3] == ["tracing", "east", "enabled"] and lines[2].split()[:3] == [
        "tracing",
        "west",
        "disabled",
    ]
