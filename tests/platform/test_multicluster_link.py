"""Links and the service mirror on the local platform, driven as a user would: `multicluster link`
piped into `apply`, an export by label, the mirror in the other cluster a moment later, calls through
it carrying the caller's identity; changes, conflicts, credentials, probes, `gateways`, `check`,
`uninstall` and `unlink`; links both ways and among three clusters."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.platform.harness import Mesh, wait_for
from tests.platform.test_multicluster_net import CONNECT, PROBE

MIRROR_WAIT = 10.0  # seconds: "a few seconds", with room for a busy machine

# east serves `backend` (not exported yet); `shop` exists in every cluster, with a client.
CLIENT = """
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: shop}
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


def whoami(name: str, namespace: str = "shop", labels: str = "", ports: str = "[{port: 80, targetPort: http}]") -> str:
    """A Deployment of the whoami app and its Service (labelled with `labels`, e.g. exported)."""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
        - name: app
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080"]
          ports: [{{containerPort: 8080, name: http}}]
---
{service(name, namespace, labels, ports)}"""


def service(name: str, namespace: str = "shop", labels: str = "", ports: str = "[{port: 80, targetPort: http}]") -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}, labels: {{{labels}}}}}
spec:
  selector: {{app: {name}}}
  ports: {ports}
"""


EXPORTED = 'mirror.isthmus.io/exported: "true"'


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh(tmp_path_factory.mktemp("mc-link") / "home")
    try:
        m.run("up", "--clusters", "west,east,north")
        for cluster in ("west", "east", "north"):
            m.apply(CLIENT, "--cluster", cluster)
        m.apply(whoami("backend"), "--cluster", "east")
        m.apply(PROBE, "--cluster", "west")
        for cluster in ("east", "west"):
            m.run("multicluster", "install", "--cluster", cluster)
        link(m, "east", "west")
        yield m
    finally:
        m.run("down", check=False)


def link(m: Mesh, remote: str, linking: str) -> str:
    printed = m.run("multicluster", "link", "--cluster-name", remote, "--linking-cluster", linking).stdout
    m.run("apply", "--cluster", linking, "-f", "-", input=printed)
    return printed


def services(m: Mesh, cluster: str) -> dict[str, dict[str, Any]]:
    out = m.run("get", "svc", "-A", "-o", "json", "--cluster", cluster).stdout
    return {f"{s['metadata']['namespace']}/{s['metadata']['name']}": s for s in json.loads(out)["items"]}


def mirror_ports(m: Mesh, cluster: str, key: str) -> list[int] | None:
    found = services(m, cluster).get(key)
    return None if found is None else [p["port"] for p in found["spec"]["ports"]]


def links(m: Mesh, cluster: str) -> dict[str, dict[str, Any]]:
    (answer,) = json.loads(m.run("multicluster", "gateways", "--cluster", cluster, "-o", "json").stdout)
    return {s["cluster"]: s for s in answer["links"]}


def curl(m: Mesh, cluster: str, pod: str, url: str) -> tuple[str, str]:
    """(status, body) of one bounded request."""
    argv = ["curl", "-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}", url]
    done = m.run("exec", "--cluster", cluster, pod, "--", *argv, timeout=30, check=False)
    body, _, code = done.stdout.rpartition("\n")
    return code, body


def first_200(m: Mesh, cluster: str, url: str, seconds: float = 30) -> dict[str, Any]:
    """The first 200 from the cluster's client (config reaches its sidecar a moment after the mirror); bounded."""
    client = m.pod("client", cluster=cluster)
    deadline, last = time.monotonic() + seconds, ("", "")
    while time.monotonic() < deadline:
        last = curl(m, cluster, client, url)
        if last[0] == "200":
            body: dict[str, Any] = json.loads(last[1])
            return body
        time.sleep(0.5)
    raise AssertionError(f"{url} from {cluster} never answered 200: {last}")


def _has_mirror(m: Mesh, cluster: str, key: str) -> bool:
    return mirror_ports(m, cluster, key) == [80]


def check(m: Mesh, cluster: str) -> subprocess.CompletedProcess[str]:
    return m.run("multicluster", "check", "--cluster", cluster, check=False)


def test_an_export_is_mirrored_within_seconds_and_called_with_the_callers_identity(mesh: Mesh) -> None:
    mesh.apply(service("backend", labels=EXPORTED), "--cluster", "east")
    started = time.monotonic()
    wait_for(lambda: mirror_ports(mesh, "west", "shop/backend-east") == [80], MIRROR_WAIT, "backend-east in west")
    assert time.monotonic() - started < MIRROR_WAIT
    mirror = services(mesh, "west")["shop/backend-east"]["metadata"]
    assert mirror["labels"]["mirror.isthmus.io/cluster-name"] == "east"
    body = first_200(mesh, "west", "http://backend-east/")
    assert body["cluster"] == "east" and body["pod"].startswith("backend-")
    assert body["headers"]["x-isthmus-client-id"] == "spiffe://cluster.local/ns/shop/sa/default"
    result = check(mesh, "west")
    assert result.returncode == 0, result.stdout
    assert "× " not in result.stdout and "east shares this mesh's trust anchor" in result.stdout


def test_a_port_change_and_an_unexport_reach_the_mirror(mesh: Mesh) -> None:
    two = "[{port: 80, targetPort: http, name: http}, {port: 8080, targetPort: http, name: alt}]"
    mesh.apply(service("backend", labels=EXPORTED, ports=two), "--cluster", "east")
    wait_for(lambda: mirror_ports(mesh, "west", "shop/backend-east") == [80, 8080], MIRROR_WAIT, "the new port")
    assert first_200(mesh, "west", "http://backend-east:8080/")["cluster"] == "east"
    mesh.apply(service("backend"), "--cluster", "east")  # the label goes
    wait_for(lambda: mirror_ports(mesh, "west", "shop/backend-east") is None, MIRROR_WAIT, "the mirror to go")
    mesh.apply(service("backend", labels=EXPORTED), "--cluster", "east")
    wait_for(lambda: mirror_ports(mesh, "west", "shop/backend-east") == [80], MIRROR_WAIT, "the mirror back")


def test_a_namespace_the_linking_cluster_lacks_is_created(mesh: Mesh) -> None:
    bank = "apiVersion: v1\nkind: Namespace\nmetadata: {name: bank}\n---\n"
    mesh.apply(bank + whoami("ledger", "bank", EXPORTED), "--cluster", "east")
    wait_for(lambda: mirror_ports(mesh, "west", "bank/ledger-east") == [80], MIRROR_WAIT, "bank/ledger-east")
    namespaces = mesh.run("get", "ns", "-o", "json", "--cluster", "west").stdout
    assert "bank" in {n["metadata"]["name"] for n in json.loads(namespaces)["items"]}


def test_a_users_service_in_a_mirrors_place_is_never_overwritten(mesh: Mesh) -> None:
    users = """
apiVersion: v1
kind: Service
metadata: {name: other-east, namespace: shop}
spec:
  selector: {app: mine}
  ports: [{port: 9000, targetPort: 9000}]
"""
    mesh.apply(users, "--cluster", "west")
    other = service("other", labels=EXPORTED).replace("{app: other}", "{app: backend}")
    mesh.apply(other, "--cluster", "east")
    refusal = "shop/other is not mirrored: service shop/other-east exists and is not this link's mirror"
    wait_for(lambda: refusal in check(mesh, "west").stdout, MIRROR_WAIT, "check to show the refusal")
    assert check(mesh, "west").returncode == 1
    assert mirror_ports(mesh, "west", "shop/other-east") == [9000]  # still the user's
    assert not services(mesh, "west")["shop/other-east"]["metadata"].get("labels")
    log = (mesh.home / "logs" / "west" / "controller.log").read_text()
    assert "export shop/other is not mirrored" in log
    mesh.run("delete", "--cluster", "west", "-f", "-", input=users)
    wait_for(lambda: mirror_ports(mesh, "west", "shop/other-east") == [80], MIRROR_WAIT, "the mirror in its place")
    assert check(mesh, "west").returncode == 0
    mesh.run("delete", "--cluster", "east", "-f", "-", input=other)  # the export itself goes
    wait_for(lambda: mirror_ports(mesh, "west", "shop/other-east") is None, MIRROR_WAIT, "the mirror to go")


def test_gateways_shows_the_remote_gateway_alive_with_its_latency(mesh: Mesh) -> None:
    wait_for(lambda: mirror_ports(mesh, "west", "shop/backend-east") == [80], MIRROR_WAIT, "the mirror")
    east = links(mesh, "west")["east"]
    assert east["probe"]["alive"] is True and east["probe"]["since_success_s"] < 5
    assert all(east["probe"]["latency_ms"][q] > 0 for q in ("p50", "p95", "p99"))
    assert "shop/backend-east" in east["mirrors"]
    table = mesh.run("multicluster", "gateways", "--cluster", "west").stdout.splitlines()
    assert table[0].split()[:5] == ["CLUSTER", "LINKED", "GATEWAY", "ALIVE", "MIRRORS"]
    row = table[1].split()
    assert row[:2] == ["west", "east"] and row[3] == "True" and int(row[4]) >= 1 and row[-1] == "ago"


def test_no_pod_reaches_a_link_api(mesh: Mesh, tmp_path: Path) -> None:
    script = tmp_path / "connect.py"
    script.write_text(CONNECT)
    status = {c["name"]: c for c in json.loads(mesh.run("status", "-o", "json").stdout)["clusters"]}
    targets = [
        f"{status['east']['wan_ip']}:6443",
        f"{status['west']['wan_ip']}:6443",
        f"{status['west']['node_ip']}:6443",
    ]
    pod = mesh.pod("probe", cluster="west")
    out = mesh.run("exec", "--cluster", "west", pod, "--", "python", str(script), *targets, timeout=60).stdout
    results = dict(line.split(" ", 1) for line in out.splitlines())
    assert len(results) == 3 and "open" not in results.values(), results


def test_a_garbage_or_revoked_credential_is_refused(mesh: Mesh) -> None:
    printed = link(mesh, "east", "north")
    wait_for(lambda: mirror_ports(mesh, "north", "shop/backend-east") == [80], MIRROR_WAIT, "backend-east in north")
    # Linking north again issues a new credential and revokes the one north holds; north keeps the old one.
    mesh.run("multicluster", "link", "--cluster-name", "east", "--linking-cluster", "north")
    wait_for(lambda: bool(links(mesh, "north")["east"]["credential_error"]), MIRROR_WAIT, "north to be refused")
    result = check(mesh, "north")
    assert result.returncode == 1 and "has been revoked" in result.stdout, result.stdout
    assert mirror_ports(mesh, "north", "shop/backend-east") == [80]  # mirrors stay as last synced
    garbage = printed.replace(_credential_b64(printed), "Z2FyYmFnZQ==")  # base64("garbage")
    mesh.run("apply", "--cluster", "north", "-f", "-", input=garbage)
    wait_for(
        lambda: "not an Isthmus link credential" in links(mesh, "north")["east"]["credential_error"],
        MIRROR_WAIT,
        "the garbage to be refused",
    )
    daemon_log = (mesh.home / "logs" / "daemon.log").read_text()
    assert "link API of east refused a request" in daemon_log and "garbage" not in daemon_log
    link(mesh, "east", "north")  # a fresh link heals it
    wait_for(lambda: check(mesh, "north").returncode == 0, MIRROR_WAIT, "north's link to pass its checks")


def _credential_b64(printed: str) -> str:
    (line,) = [line for line in printed.splitlines() if line.strip().startswith("credential:")]
    return line.split(":", 1)[1].strip()


def test_links_both_ways_and_among_three_clusters(mesh: Mesh) -> None:
    mesh.apply(whoami("api", labels=EXPORTED), "--cluster", "west")
    link(mesh, "west", "east")
    link(mesh, "west", "north")
    if "east" not in links(mesh, "north"):
        link(mesh, "east", "north")
    for cluster in ("east", "north"):
        wait_for(partial(_has_mirror, mesh, cluster, "shop/api-west"), MIRROR_WAIT, f"api-west in {cluster}")
    north_id = "spiffe://cluster.local/ns/shop/sa/default"
    for url, served_by in (("http://api-west/", "west"), ("http://backend-east/", "east")):
        body = first_200(mesh, "north", url)
        assert body["cluster"] == served_by and body["headers"]["x-isthmus-client-id"] == north_id
    assert first_200(mesh, "east", "http://api-west/")["cluster"] == "west"
    assert first_200(mesh, "west", "http://backend-east/")["cluster"] == "east"
    assert set(links(mesh, "north")) == {"east", "west"}


def test_a_stopped_gateway_is_seen_dead_within_seconds_and_its_mirrors_fail_fast(mesh: Mesh) -> None:
    first_200(mesh, "west", "http://backend-east/")
    scale = ["scale", "deployment", "isthmus-gateway", "-n", "isthmus-multicluster", "--cluster", "east"]
    mesh.run(*scale, "--replicas", "0")
    try:
        started = time.monotonic()
        wait_for(lambda: links(mesh, "west")["east"]["probe"]["alive"] is False, 10, "east's gateway to be dead")
        assert time.monotonic() - started < 10
        table = mesh.run("multicluster", "gateways", "--cluster", "west").stdout
        assert table.splitlines()[1].split()[3] == "False"
        client = mesh.pod("client", cluster="west")
        wait_for(lambda: curl(mesh, "west", client, "http://backend-east/")[0] == "503", 10, "a fast 503")
        before = time.monotonic()
        assert curl(mesh, "west", client, "http://backend-east/")[0] == "503"
        assert time.monotonic() - before < 4  # no waiting on a dead gateway (exec itself takes a moment)
    finally:
        mesh.run(*scale, "--replicas", "1")
    wait_for(lambda: links(mesh, "west")["east"]["probe"]["alive"] is True, 60, "east's gateway back")
    first_200(mesh, "west", "http://backend-east/")


def test_uninstall_is_refused_while_linked_unless_forced(mesh: Mesh) -> None:
    refused = mesh.run("multicluster", "uninstall", "--cluster", "east", check=False)
    assert refused.returncode == 1 and "north, west are linked to east" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert mesh.pods(cluster="east") and any(
        p["namespace"] == "isthmus-multicluster" for p in mesh.pods(cluster="east")
    )
    forced = mesh.run("multicluster", "uninstall", "--cluster", "east", "--force")
    assert "deployment.apps/isthmus-gateway deleted" in forced.stdout
    wait_for(lambda: links(mesh, "west")["east"]["probe"]["alive"] is False, 10, "west to see east's gateway gone")
    mesh.run("multicluster", "install", "--cluster", "east")
    wait_for(lambda: links(mesh, "west")["east"]["probe"]["alive"] is True, 30, "east's gateway back")


def test_unlink_removes_the_link_and_every_mirror_it_made_and_revokes_its_credential(mesh: Mesh) -> None:
    wait_for(lambda: "shop/backend-east" in services(mesh, "west"), MIRROR_WAIT, "the mirrors")
    out = mesh.run("multicluster", "unlink", "--cluster-name", "east", "--cluster", "west").stdout
    assert "secret/link-east deleted" in out and "credential revoked in east" in out
    assert not [k for k, s in services(mesh, "west").items() if k.endswith("-east")]
    assert "east" not in links(mesh, "west")
    issued = json.loads((mesh.home / "clusters" / "east" / "links.json").read_text())["credentials"]
    assert "west" not in {i["cluster"] for i in issued}
    again = mesh.run("multicluster", "unlink", "--cluster-name", "east", "--cluster", "west", check=False)
    assert again.returncode == 1 and "has no link to east" in again.stderr
    assert "shop/backend-east" in services(mesh, "north")  # other links are untouched


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--cluster-name", "east"],
            "name the cluster that will use the link with --linking-cluster",
            id="which-linking",
        ),
        pytest.param(
            ["--cluster-name", "north", "--linking-cluster", "west"], "cluster north has no gateway", id="no-gateway"
        ),
        pytest.param(
            ["--cluster-name", "south", "--linking-cluster", "west"], "no cluster named 'south'", id="unknown-remote"
        ),
        pytest.param(
            ["--cluster-name", "east", "--linking-cluster", "south"],
            "no cluster named 'south' to link from",
            id="unknown-linking",
        ),
        pytest.param(["--cluster-name", "east", "--linking-cluster", "east"], "cannot link to itself", id="itself"),
        pytest.param(["--cluster-name", "East!"], "--cluster-name 'East!' is not valid", id="bad-name"),
    ],
)
def test_bad_link_requests_get_one_clear_line_and_issue_nothing(mesh: Mesh, argv: list[str], message: str) -> None:
    before = (mesh.home / "clusters" / "east" / "links.json").read_text()
    done = mesh.run("multicluster", "link", *argv, check=False)
    assert done.returncode == 1 and message in done.stderr and done.stdout == "", done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert (mesh.home / "clusters" / "east" / "links.json").read_text() == before


def test_after_a_restart_of_every_cluster_the_links_resume(mesh: Mesh) -> None:
    """Links, credentials and mirrors are kept with the mesh; each link's controller connects again."""
    mesh.run("down")
    mesh.run("up")
    wait_for(lambda: links(mesh, "north").get("east", {}).get("connected") is True, 60, "north's link to east")
    assert first_200(mesh, "north", "http://backend-east/", seconds=60)["cluster"] == "east"
    assert first_200(mesh, "north", "http://api-west/", seconds=60)["cluster"] == "west"
    wait_for(lambda: check(mesh, "north").returncode == 0, 30, "north's links to pass their checks")
