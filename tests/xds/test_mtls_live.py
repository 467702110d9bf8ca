"""Mutual TLS between real sidecars, with real certificates, in pod namespaces of our own.

Three sidecars take their config over ADS: a client, a server whose policy is
"all-authenticated" and one whose policy is "all-unauthenticated", plus a pod without
a sidecar. Clients inside the mesh go through the client's sidecar; clients outside
it (curl-like raw HTTP and Python ssl) connect from the node's namespace.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from isthmus.model.index import ClusterState
from isthmus.model.mesh import CLIENT_ID_HEADER, WORKLOAD_SECRET_FILE, node_id
from isthmus.model.resources import ContainerPort, ObjectMeta, Pod, Service, ServiceAddress, ServicePort
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.proxy.redirect import iptables_rules
from isthmus.proxy.sds_files import KEY_FILE_PREFIX, render_sds_files
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from isthmus.xds.translate import build_sidecar
from tests.xds.certs import TestMesh, Workload, write_identity, write_pem_files
from tests.xds.envoy_config import find_envoy
from tests.xds.fixed_ads import FixedAds, serve
from tests.xds.fixtures import pod, service, state

ENVOY = find_envoy()
UNSHARE = shutil.which("unshare")
pytestmark = [
    pytest.mark.envoy,
    pytest.mark.netns,
    pytest.mark.skipif(
        ENVOY is None or UNSHARE is None or not shutil.which("iptables") or not shutil.which("curl"),
        reason="needs envoy, unshare, iptables and curl",
    ),
]

NODE_IP = "10.44.0.1"
OUTSIDE_IP = "10.44.0.100"  # a client outside the mesh: pod redirect rules exempt only the node
XFCC = "x-forwarded-client-cert"
# Least request picks at random between idle replicas: 16 tries all miss one of two with p = 2**-16.
MIXED_REQUESTS = 16

CLIENT = pod("client", "10.44.0.2", "client", [9000])
WEB = dataclasses.replace(
    pod("web-1", "10.44.0.3", "web", [ContainerPort(8080, "http"), 6379], opaque="6379", policy="all-authenticated"),
    labels=(("app", "web"), ("mixed", "yes")),
)
OPEN = pod("open-1", "10.44.0.4", "open", [8080], policy="all-unauthenticated")
LEGACY = dataclasses.replace(
    pod("legacy", "10.44.0.5", "legacy", [8080], injected=False), labels=(("app", "legacy"), ("mixed", "yes"))
)
# The model says the pods behind "db" run as service account "db", but its one address is
# web-1's, whose sidecar proves it is "web": the client must refuse to talk to it.
IMPOSTOR = pod("db-1", WEB.ip, "db", [8080])
SERVICES = (
    service("web", "10.96.0.10", [(80, 8080)]),
    service("open", "10.96.0.11", [(80, 8080)]),
    service("echo", "10.96.0.12", [(6379, 6379)], app="web"),
    service("db", "10.96.0.13", [(80, 8080)]),
    ServiceAddress(Service(ObjectMeta("mixed"), (("mixed", "yes"),), (ServicePort(80, 8080),)), "10.96.0.14", "west"),
)
SIDECARS = (CLIENT, WEB, OPEN)
APPS = {"web-1": ([8080, 7000], [6379]), "open-1": ([8080, 7000], []), "legacy": ([8080], []), "client": ([], [])}


def ident(p: Pod) -> str:
    return f"spiffe://cluster.local/ns/default/sa/{p.service_account}"


def _der_sha(pem: str) -> str:
    return hashlib.sha256(
        x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    ).hexdigest()


def _actions(
    certs: dict[str, tuple[Path, Path]], renewal: dict[str, Any], broken: dict[str, Any], old_web_cert: str
) -> list[dict[str, Any]]:
    forged = {CLIENT_ID_HEADER: "spiffe://cluster.local/ns/default/sa/forged", XFCC: "By=forged;URI=forged"}

    def curl(check: str, vip: str) -> dict[str, Any]:
        """From the client pod, through its sidecar."""
        args = [f"http://{vip}/", *(x for k, v in forged.items() for x in ("-H", f"{k}: {v}"))]
        return {"op": "curl", "id": check, "netns": "client", "args": args}

    def outside(check: str, p: Pod, port: int) -> dict[str, Any]:
        """Plaintext HTTP from outside the mesh."""
        return {"op": "http", "id": check, "ip": p.ip, "port": port, "source": OUTSIDE_IP, "headers": forged}

    def tls(check: str, p: Pod, cert: str | None, alpn: list[str] | None = None) -> dict[str, Any]:
        """HTTP/1.1 over TLS from outside the mesh, with one of `certs` (or none)."""
        files = {"cert": str(certs[cert][0]), "key": str(certs[cert][1])} if cert else {}
        return {
            "op": "tls",
            "id": check,
            "ip": p.ip,
            "port": 8080,
            "source": OUTSIDE_IP,
            "alpn": ["http/1.1"] if alpn is None else alpn,
            "headers": forged,
            **files,
        }

    ssl_stats = r"^(cluster\.outbound\|.*|listener\.0\.0\.0\.0_4143)\.ssl\.(handshake|connection_error|fail_verify_.*)$"
    cx_total = r"^cluster\.outbound\|80\|web\|default\.upstream_cx_total$"
    return [
        curl("mesh-http", "10.96.0.10"),
        curl("mesh-to-open-pod", "10.96.0.11"),
        {"op": "echo", "id": "mesh-tcp", "netns": "client", "ip": "10.96.0.12", "port": 6379, "data": "ping"},
        *(curl(f"mesh-mixed-{i}", "10.96.0.14") for i in range(MIXED_REQUESTS)),
        curl("impostor", "10.96.0.13"),
        outside("plaintext-strict-http", WEB, 8080),
        {"op": "echo", "id": "plaintext-strict-tcp", "ip": WEB.ip, "port": 6379, "source": OUTSIDE_IP, "data": "x"},
        outside("plaintext-strict-undeclared", WEB, 7000),
        tls("tls-strict-mesh-cert", WEB, "tester"),
        tls("tls-strict-foreign-anchor", WEB, "foreign"),
        tls("tls-strict-expired", WEB, "expired"),
        tls("tls-strict-not-yet-valid", WEB, "future"),
        tls("tls-strict-no-cert", WEB, None),
        tls("tls-strict-other-alpn", WEB, "tester", alpn=[]),
        outside("plaintext-open-http", OPEN, 8080),
        outside("plaintext-open-undeclared", OPEN, 7000),
        tls("tls-open-foreign-anchor", OPEN, "foreign"),
        {"op": "stats", "id": "client-ssl", "netns": "client", "filter": ssl_stats},
        {"op": "stats", "id": "web-ssl", "netns": "web-1", "filter": ssl_stats},
        # Renewal: the agent renames new files into place; Envoy must serve the new certificate
        # to new connections without a restart, and keep the connections it has.
        {"op": "stats", "id": "cx-before", "netns": "client", "filter": cx_total},
        {"op": "rotate", "id": "rotate", **renewal},
        {**tls("renewed", WEB, "tester"), "op": "wait_cert", "old": old_web_cert},
        curl("mesh-http-after-renewal", "10.96.0.10"),
        {"op": "stats", "id": "sds-after-renewal", "netns": "web-1", "filter": r"^sds\."},
        # A broken write (its key file missing) is rejected; the last good certificate stays in use.
        {"op": "rotate", "id": "broken-write", **broken},
        {"op": "sleep", "seconds": 0.5},
        tls("after-broken-write", WEB, "tester"),
        {"op": "stats", "id": "sds-after-broken-write", "netns": "web-1", "filter": r"^sds\."},
        {"op": "stats", "id": "cx-after", "netns": "client", "filter": cx_total},
    ]


def _renewals(mesh: TestMesh, web_dir: Path, staging: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The probe's two writes into web-1's identity directory, each rendered as the agent
    will: a renewal, then a broken one whose key file never arrives."""
    steps = []
    for name, complete in (("renewal", True), ("broken", False)):
        fresh = mesh.workload(WEB.namespace, WEB.service_account)
        files = render_sds_files(fresh.chain_pem, fresh.key_pem, mesh.bundle_pem, str(web_dir))
        if not complete:
            files = {WORKLOAD_SECRET_FILE: files[WORKLOAD_SECRET_FILE]}
        staged = staging / name
        staged.mkdir(parents=True)
        for file, text in files.items():
            (staged / file).write_text(text)
        old_keys = [k.name for k in web_dir.glob(f"{KEY_FILE_PREFIX}*")] if complete else []
        steps.append({"staged": str(staged), "target": str(web_dir), "files": list(files), "remove": old_keys})
    return steps[0], steps[1]


def _pod_specs(
    mesh: TestMesh, workloads: dict[str, Workload], cluster_state: ClusterState, short_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, Snapshot]]:
    """What the probe starts in each pod, and the snapshots the ADS stub serves by node id."""
    socket_path = short_dir / "ads.sock"
    pods: list[dict[str, Any]] = []
    snapshots: dict[str, Snapshot] = {}
    for p in SIDECARS:
        identity = write_identity(short_dir / f"id-{p.name}", mesh, workloads[p.name])
        node = node_id(p.cluster, p.namespace, p.name)
        snapshots[node] = build_sidecar(cluster_state, p, str(identity))
        bootstrap = short_dir / f"{p.name}.json"
        bootstrap.write_text(json.dumps(render_bootstrap(node, p.deployment, p.ip, str(socket_path), {"pod": p.name})))
        log = str(short_dir / f"{p.name}.log")
        pods.append(
            {"name": p.name, "ip": p.ip, "bootstrap": str(bootstrap), "log": log, "iptables": iptables_rules(NODE_IP)}
        )
    pods.append({"name": LEGACY.name, "ip": LEGACY.ip})
    for spec_pod in pods:
        spec_pod["http_ports"], spec_pod["echo_ports"] = APPS[spec_pod["name"]]
    return pods, snapshots


def _run(short_dir: Path) -> tuple[dict[str, Any], dict[str, Any], FixedAds, str]:
    assert ENVOY is not None and UNSHARE is not None
    mesh, foreign = TestMesh(), TestMesh("someone else's anchor")
    # Each sidecar's own certificate, for the identity its pod runs as.
    workloads = {p.name: mesh.workload(p.namespace, p.service_account) for p in SIDECARS}
    cluster_state = state(*SERVICES, CLIENT, WEB, OPEN, LEGACY, IMPOSTOR)
    pods, snapshots = _pod_specs(mesh, workloads, cluster_state, short_dir)
    web_dir = short_dir / "id-web-1"
    renewal, broken = _renewals(mesh, web_dir, short_dir / "staged")
    # Certificates for clients outside the mesh, good and bad.
    client_certs: dict[str, Workload] = {
        "tester": mesh.workload("default", "tester"),
        "foreign": foreign.workload("default", "client"),
        "expired": mesh.expired("default", "client"),
        "future": mesh.not_yet_valid("default", "client"),
    }
    certs = {name: write_pem_files(short_dir / "clients", name, w) for name, w in client_certs.items()}
    spec = {
        "envoy": ENVOY,
        "node_ip": NODE_IP,
        "outside_ip": OUTSIDE_IP,
        "prefixlen": 24,
        "pods": pods,
        "actions": _actions(certs, renewal, broken, _der_sha(workloads["web-1"].cert_pem)),
    }
    (short_dir / "spec.json").write_text(json.dumps(spec))
    ads = FixedAds(snapshots)
    server = serve(ads, short_dir / "ads.sock")
    try:
        probe = Path(__file__).with_name("mesh_probe.py")
        # A PID namespace of its own: when the probe ends, or times out, every Envoy and app dies with it.
        proc = subprocess.run(
            [UNSHARE, "-Urnmpf", "--kill-child", sys.executable, str(probe), str(short_dir / "spec.json")],
            capture_output=True,
            text=True,
            timeout=150,
        )
    finally:
        server.stop(grace=None)
    logs = "\n".join(f"--- {p.name}\n" + _tail(short_dir / f"{p.name}.log") for p in SIDECARS)
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"no network namespaces here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:] + logs
    out = json.loads(proc.stdout)
    results = {r["id"]: r for r in out["results"]}
    return out, results, ads, logs


def _tail(path: Path) -> str:
    return path.read_text()[-4000:] if path.exists() else ""


@dataclasses.dataclass(frozen=True)
class Run:
    """One probe run: check id -> result, and what to show when an assertion fails."""

    results: dict[str, dict[str, Any]]
    logs: str

    def __getitem__(self, check: str) -> dict[str, Any]:
        return self.results[check]


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    short_dir = Path(tempfile.mkdtemp(prefix="isthmus-m-", dir="/tmp"))
    try:
        out, results, ads, logs = _run(short_dir)
        assert all(v.get("ready") for v in out["ready"].values()), (out["ready"], logs)
        assert ads.nacks == [], logs
        for node, acked in ads.acked.items():
            assert set(acked) == {CLUSTER, ENDPOINT, LISTENER, ROUTE}, (node, logs)
        assert all(out["envoys_still_running"].values()), logs
        yield Run(results, logs)
    finally:
        shutil.rmtree(short_dir, ignore_errors=True)


def test_meshed_request_carries_the_verified_client_identity(run: Run) -> None:
    for check, server in (("mesh-http", WEB), ("mesh-to-open-pod", OPEN)):
        assert run[check]["status"] == 200, (run[check], run.logs)
        assert run[check]["body"]["pod"] == server.name
        seen = run[check]["body"]["headers"]
        # The app could trust the header: the forged copy the client sent is gone.
        assert seen[CLIENT_ID_HEADER] == ident(CLIENT), check
        assert f"URI={ident(CLIENT)}" in seen[XFCC] and "forged" not in seen[XFCC], check
    stats = run["client-ssl"]["stats"]
    assert stats["cluster.outbound|80|web|default.ssl.handshake"] >= 1, stats
    assert stats["cluster.outbound|80|open|default.ssl.handshake"] >= 1, stats


def test_opaque_tcp_crosses_mtls(run: Run) -> None:
    assert run["mesh-tcp"]["echoed"] == "ping", run["mesh-tcp"]
    stats = run["client-ssl"]["stats"]
    assert stats["cluster.outbound|6379|echo|default|tcp.ssl.handshake"] >= 1, stats


def test_mixed_service_uses_mtls_where_there_is_a_sidecar(run: Run) -> None:
    # web-1 admits only mTLS, so its answers prove the HTTP/1.1 pool's TLS ("http/1.1" in
    # ALPN) was accepted; the pod without a sidecar answers plaintext from the same cluster.
    mixed = [run[f"mesh-mixed-{i}"] for i in range(MIXED_REQUESTS)]
    assert all(m["status"] == 200 for m in mixed), (mixed, run.logs)
    web = [m["body"]["headers"] for m in mixed if m["body"]["pod"] == "web-1"]
    assert web, "16 requests never reached web-1"
    assert all(h[CLIENT_ID_HEADER] == ident(CLIENT) for h in web)


def test_client_refuses_a_server_with_another_identity_than_the_model_says(run: Run) -> None:
    assert run["impostor"]["status"] == 503, run["impostor"]
    stats = run["client-ssl"]["stats"]
    assert stats["cluster.outbound|80|db|default.ssl.fail_verify_san"] >= 1, stats
    assert stats["cluster.outbound|80|db|default.ssl.handshake"] == 0, stats


def test_all_authenticated_closes_plaintext_on_every_port(run: Run) -> None:
    assert run["plaintext-strict-http"].get("closed_without_answer"), run["plaintext-strict-http"]
    assert run["plaintext-strict-undeclared"].get("closed_without_answer"), run["plaintext-strict-undeclared"]
    assert not run["plaintext-strict-tcp"]["echoed"], run["plaintext-strict-tcp"]


def test_a_mesh_certificate_valid_now_gets_in_from_outside_too(run: Run) -> None:
    # The positive control for the refusals below: same client, same port, a good certificate.
    good = run["tls-strict-mesh-cert"]
    assert good["status"] == 200, (good, run.logs)
    assert good["version"] == "TLSv1.3" and good["alpn"] == "http/1.1"
    assert good["body"]["headers"][CLIENT_ID_HEADER] == "spiffe://cluster.local/ns/default/sa/tester"


@pytest.mark.parametrize(
    "check",
    [
        "tls-strict-foreign-anchor",
        "tls-strict-expired",
        "tls-strict-not-yet-valid",
        "tls-strict-no-cert",
        "tls-strict-other-alpn",
        "tls-open-foreign-anchor",
    ],
)
def test_bad_client_certificates_are_refused(run: Run, check: str) -> None:
    result = run[check]
    assert result["status"] is None and "body" not in result, result
    assert result.get("error") or result.get("closed_without_answer"), result


def test_refusals_show_in_the_servers_tls_stats(run: Run) -> None:
    stats = run["web-ssl"]["stats"]
    failures = sum(v for k, v in stats.items() if k.startswith("listener.") and not k.endswith(".handshake"))
    assert failures >= 4, stats  # foreign anchor, expired, not yet valid, no certificate


def test_all_unauthenticated_lets_plaintext_in_without_an_identity(run: Run) -> None:
    result = run["plaintext-open-http"]
    assert result["status"] == 200, result
    assert CLIENT_ID_HEADER not in result["body"]["headers"]
    assert XFCC not in result["body"]["headers"]
    # Undeclared ports pass through as TCP: the app gets bytes, and no header promise.
    assert run["plaintext-open-undeclared"]["status"] == 200, run["plaintext-open-undeclared"]


def test_renewed_certificate_is_served_without_restart_or_dropped_connections(run: Run) -> None:
    renewed = run["renewed"]
    assert renewed["changed_after_s"] is not None, (renewed, run.logs)
    assert run["mesh-http-after-renewal"]["status"] == 200
    # The old key is gone, and new connections (made after that) still work.
    assert len([n for n in run["rotate"]["left"] if n.startswith(KEY_FILE_PREFIX)]) == 1, run["rotate"]
    key = "cluster.outbound|80|web|default.upstream_cx_total"
    assert run["cx-after"]["stats"][key] == run["cx-before"]["stats"][key]
    print(
        run["sds-after-renewal"],
        run["sds-after-broken-write"],
        run["after-broken-write"].get("peer_cert_sha"),
        renewed["last"].get("peer_cert_sha"),
    )
    print(f"renewed certificate served {renewed['changed_after_s']} s after the rename")


def test_a_broken_write_is_rejected_and_the_last_good_certificate_stays(run: Run) -> None:
    rejected = "sds.workload.update_rejected"
    assert run["sds-after-broken-write"]["stats"][rejected] == run["sds-after-renewal"]["stats"][rejected] + 1
    after = run["after-broken-write"]
    assert after["status"] == 200, after
    assert after["peer_cert_sha"] == run["renewed"]["last"]["peer_cert_sha"]
