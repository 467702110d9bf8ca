"""Tracing on a real mesh: with the add-on enabled, a request through two sidecars is one connected trace
whose spans carry each pod's metadata, within a cluster and across two; disabling takes it all away."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.platform.harness import Mesh, wait_for
from tests.platform.test_lifecycle import SMALL
from tests.platform.test_multicluster_calls import EAST, mirror

GIVEN_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
GIVEN_PARENT = "00f067aa0ba902b7"
SPANS_WAIT = 20.0  # spans leave a sidecar within about a second (its flush interval)


# Class-scoped, so one mesh is torn down before the next starts (the machine is small).
@pytest.fixture(scope="class")
def traced_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh = Mesh(tmp_path_factory.mktemp("tracing") / "home")
    try:
        mesh.run("up")
        mesh.apply(SMALL)
        mesh.run("addons", "enable", "tracing")
        yield mesh
    finally:
        mesh.run("down", check=False)


def _call(mesh: Mesh, url: str, *headers: str, cluster: str | None = None) -> dict[str, Any]:
    """The whoami answer of the first 200 (config reaches the sidecars a moment after a change); bounded."""
    where = ["--cluster", cluster] if cluster else []
    client = mesh.pod("client", cluster=cluster)
    argv = ["curl", "-sS", "--fail", "-m", "5", *[a for h in headers for a in ("-H", h)], url]
    last = ""
    for _ in range(30):
        done = mesh.run("exec", *where, client, "--", *argv, timeout=30, check=False)
        if done.returncode == 0:
            answer: dict[str, Any] = json.loads(done.stdout)
            return answer
        last = done.stdout + done.stderr
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered: {last}")


def _trace_id_seen_by_app(answer: dict[str, Any]) -> str:
    version, trace_id, _span, flags = answer["headers"]["traceparent"].split("-")
    assert (version, flags) == ("00", "01"), answer["headers"]["traceparent"]
    return trace_id


def _trace(mesh: Mesh, trace_id: str, spans: int, *extra: str) -> dict[str, Any]:
    """The trace as `isthmus traces -o json` shows it, once it has `spans` spans; bounded."""
    found: dict[str, Any] = {}

    def complete() -> bool:
        nonlocal found
        out = mesh.run("traces", "--trace", trace_id, "-o", "json", *extra, check=False)
        if out.returncode != 0:
            return False
        traces = json.loads(out.stdout)["traces"]
        found = traces[0] if traces else {}
        return len(found.get("spans", [])) >= spans

    wait_for(complete, SPANS_WAIT, f"{spans} spans of trace {trace_id}", interval=0.5)
    return found


def _pod(mesh: Mesh, deployment: str, name: str, cluster: str | None = None) -> dict[str, Any]:
    (found,) = [p for p in mesh.pods(deployment, cluster) if p["name"] == name]
    return found


def _check_metadata(mesh: Mesh, span: dict[str, Any], deployment: str, cluster: str, mesh_cluster: str | None) -> None:
    pod = _pod(mesh, deployment, span["attributes"]["k8s.pod.name"], mesh_cluster)
    assert span["attributes"]["k8s.namespace.name"] == pod["namespace"] == "shop"
    assert span["attributes"]["k8s.deployment.name"] == deployment
    assert span["attributes"]["isthmus.service_account"] == pod["service_account"] == "default"
    assert span["attributes"]["k8s.cluster.name"] == cluster
    assert span["attributes"]["k8s.node.name"] == f"{cluster}-node"
    assert span["resource"]["service.name"] == f"{deployment}.shop"
    assert (span["pod"], span["cluster"], span["deployment"]) == (pod["name"], cluster, deployment)


def _active_listeners(mesh: Mesh, pod: str) -> str:
    dump = json.loads(mesh.exec(pod, "curl", "-sS", "-m", "5", "http://127.0.0.1:4191/config_dump").stdout)
    (listeners,) = [c for c in dump["configs"] if c["@type"].endswith("ListenersConfigDump")]
    # A replaced listener drains for a while; what serves new connections is the active state.
    return json.dumps([lst["active_state"] for lst in listeners.get("dynamic_listeners", []) if "active_state" in lst])


class TestOneCluster:
    def test_a_request_is_one_trace_through_both_sidecars_tagged_with_their_pods(self, traced_mesh: Mesh) -> None:
        answer = _call(traced_mesh, "http://api.shop/first")
        trace_id = _trace_id_seen_by_app(answer)
        trace = _trace(traced_mesh, trace_id, 2)
        assert trace["trace_id"] == trace_id
        client, server = trace["spans"]
        # The client's sidecar started the trace; the server's sidecar continued it as its child.
        assert (client["kind"], client["direction"], client["parent_span_id"], client["depth"]) == (
            "client",
            "outbound",
            "",
            0,
        )
        assert (server["kind"], server["direction"], server["depth"]) == ("server", "inbound", 1)
        assert server["parent_span_id"] == client["span_id"]
        assert {s["trace_id"] for s in trace["spans"]} == {trace_id}
        assert client["attributes"]["http.url"] == server["attributes"]["http.url"] == "http://api.shop/first"
        assert client["http_status"] == server["http_status"] == "200"
        _check_metadata(traced_mesh, client, "client", "local", None)
        _check_metadata(traced_mesh, server, "api", "local", None)
        assert server["pod"] == answer["pod"], "the inbound span is the sidecar of the pod that answered"
        # The app saw the inbound sidecar's span as its parent, to pass on in calls of its own.
        assert answer["headers"]["traceparent"].split("-")[2] == server["span_id"]

        table = traced_mesh.run("traces", "--limit", "5").stdout
        assert (
            trace_id in table and "out GET http://api.shop/first" in table and "in GET http://api.shop/first" in table
        )

    def test_a_given_traceparent_keeps_its_trace_id(self, traced_mesh: Mesh) -> None:
        answer = _call(traced_mesh, "http://api.shop/given", f"traceparent: 00-{GIVEN_TRACE}-{GIVEN_PARENT}-01")
        assert _trace_id_seen_by_app(answer) == GIVEN_TRACE
        trace = _trace(traced_mesh, GIVEN_TRACE, 2)
        client, server = trace["spans"]
        assert client["parent_span_id"] == GIVEN_PARENT  # the caller's span, outside the mesh
        assert server["parent_span_id"] == client["span_id"]
        assert (client["pod"], server["pod"]) == (traced_mesh.pod("client"), answer["pod"])

    def test_enabling_twice_changes_nothing_and_disabling_leaves_nothing(self, traced_mesh: Mesh) -> None:
        client = traced_mesh.pod("client")
        collector = [p["name"] for p in traced_mesh.pods("isthmus-tracing")]
        assert len(collector) == 1
        assert "envoy.tracers.opentelemetry" in _active_listeners(traced_mesh, client)

        again = traced_mesh.run("addons", "enable", "tracing").stdout
        assert "created" not in again and "configured" not in again and "unchanged" in again, again
        assert [p["name"] for p in traced_mesh.pods("isthmus-tracing")] == collector

        traced_mesh.run("addons", "disable", "tracing")
        assert traced_mesh.pods("isthmus-tracing") == []
        names = [n["metadata"]["name"] for n in json.loads(traced_mesh.run("get", "ns", "-o", "json").stdout)["items"]]
        assert "isthmus-system" not in names
        wait_for(
            lambda: "opentelemetry" not in _active_listeners(traced_mesh, client),
            30,
            "the client's sidecar to lose its tracing config",
        )
        listed = json.loads(traced_mesh.run("addons", "list", "-o", "json").stdout)["addons"]
        assert listed == [{"name": "tracing", "cluster": "local", "status": "disabled"}]
        off = traced_mesh.run("traces", check=False)
        assert off.returncode == 1 and "tracing is not enabled" in off.stderr, off.stderr
        assert "is not enabled" in traced_mesh.run("addons", "disable", "tracing").stdout
        # Traffic is untouched by all this.
        assert _call(traced_mesh, "http://api.shop/")["pod"].startswith("api-")


# ---------------------------------------------------------------- across clusters


@pytest.fixture(scope="class")
def two_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """west calls east's `api` through a mirror applied by hand (as in test_multicluster_calls)."""
    mesh = Mesh(tmp_path_factory.mktemp("tracing-mc") / "home")
    try:
        mesh.run("up", "--clusters", "west,east")
        mesh.apply(SMALL, "--cluster", "east")
        mesh.apply(EAST, "--cluster", "east")
        mesh.apply(SMALL, "--cluster", "west")
        mesh.run("multicluster", "install", "--cluster", "east")
        clusters = json.loads(mesh.run("status", "-o", "json").stdout)["clusters"]
        gateway = next(c["gateway_wan_ip"] for c in clusters if c["name"] == "east")
        mesh.apply(mirror("api", 80, gateway), "--cluster", "west")
        mesh.run("addons", "enable", "tracing")  # every cluster
        yield mesh
    finally:
        mesh.run("down", check=False)


class TestTwoClusters:
    def test_a_call_across_clusters_is_one_trace_joined_from_both_collectors(self, two_clusters: Mesh) -> None:
        answer = _call(two_clusters, "http://api-east/across", cluster="west")
        assert answer["cluster"] == "east"
        trace_id = _trace_id_seen_by_app(answer)
        trace = _trace(two_clusters, trace_id, 2)
        assert trace["clusters"] == ["east", "west"]
        client, server = trace["spans"]
        assert server["parent_span_id"] == client["span_id"]
        _check_metadata(two_clusters, client, "client", "west", "west")
        _check_metadata(two_clusters, server, "api", "east", "east")
        # The gateway adds no span (it forwards the caller's mTLS unopened); the hop is marked instead.
        assert (client["crossed_from"], server["crossed_from"]) == (None, "west")

        # Each collector holds its own cluster's half.
        west = _trace(two_clusters, trace_id, 1, "--cluster", "west")
        east = _trace(two_clusters, trace_id, 1, "--cluster", "east")
        assert [s["span_id"] for s in west["spans"]] == [client["span_id"]]
        assert [s["span_id"] for s in east["spans"]] == [server["span_id"]]
        table = two_clusters.run("traces", "--trace", trace_id).stdout
        assert "(from west, through east's gateway)" in table, table
