"""Issuer and trust-anchor rotation on a running mesh, under steady traffic, as a user runs it.

Two streams run through the whole rotation: loadgen's HTTP requests at 40/s over
kept-alive connections (which must never be dropped), and a fresh TCP connection
every 100 ms to an opaque port, each one a new mTLS handshake between the
sidecars (which must verify at every moment of the rotation). Neither may fail.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from isthmus.cli.main import main
from isthmus.cli.rotate import LIVE_PATH, judge_all, live_sidecars, render_status, status_view
from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.clock import SystemClock
from isthmus.identity.csr import generate_key, private_key_pem
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.load import load_issuer, load_trust_anchor, load_trust_bundle
from isthmus.identity.signing import issue_certificate
from isthmus.identity.spiffe import workload_id
from isthmus.platform.local import trust_rotation as rotation_files
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.trust import ensure_anchor, ensure_cluster
from isthmus.viz.admin import PodRef, StaticAdminScraper
from tests.platform.harness import Mesh
from tests.platform.test_identity import TLS_PEER

APPS = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: srv}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: srv}
spec:
  replicas: 2
  selector: {matchLabels: {app: srv}}
  template:
    metadata:
      labels: {app: srv}
      annotations: {config.isthmus.io/opaque-ports: "7070"}
    spec:
      serviceAccountName: srv
      containers:
        - name: http
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080"]
          ports: [{name: http, containerPort: 8080}]
        - name: tcp
          command: ["python", "-m", "isthmus.apps.tcp_echo", "--port", "7070"]
          ports: [{name: tcp, containerPort: 7070}]
---
apiVersion: v1
kind: Service
metadata: {name: srv}
spec:
  selector: {app: srv}
  ports:
    - {name: http, port: 80, targetPort: http}
    - {name: tcp, port: 7070, targetPort: tcp}
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
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: outsider}
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

# Runs in the client pod: one new connection every INTERVAL seconds (each a new mTLS handshake between
# the sidecars, the port being opaque), until SIGTERM, MAX attempts or MAX_SECONDS; then a JSON report.
FRESH_CONNECTIONS = """
import json, signal, socket, sys, time
host, port, interval, most, max_seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
attempts, failures, times = 0, [], []
start = time.monotonic()
while not stop and attempts < most and time.monotonic() - start < max_seconds:
    due = start + attempts * interval
    time.sleep(max(0.0, due - time.monotonic()))
    attempts += 1
    message = f"hello {attempts}\\n".encode()
    try:
        with socket.create_connection((host, port), timeout=5) as s:
            s.settimeout(5)
            s.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
        if got != message:
            failures.append(f"{attempts}: echoed {got!r}")
        else:
            times.append(time.time())
    except OSError as e:
        failures.append(f"{attempts}: {e!r}")
gaps = [b - a for a, b in zip(times, times[1:])]
print(json.dumps({"attempts": attempts, "failures": failures, "first": times[0] if times else None,
                  "last": times[-1] if times else None, "max_gap": max(gaps, default=None)}))
"""

RATE = 40
FRESH_INTERVAL = 0.1
STREAM_LIMIT_S = 300  # both streams stop by themselves after this, whatever happens to the test


@dataclass
class Stream:
    """A bounded client process in a pod, stopped by its pid (written to a file as it starts)."""

    mesh: Mesh
    pod: str
    process: subprocess.Popen[str]
    pidfile: Path

    @classmethod
    def start(cls, mesh: Mesh, pod: str, pidfile: Path, *argv: str) -> Stream:
        shell = f'echo $$ > {pidfile} && exec "$@"'
        return cls(mesh, pod, mesh.popen("exec", pod, "--", "sh", "-c", shell, "sh", *argv), pidfile)

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> dict[str, Any]:
        """SIGTERM it (it reports what it did) and return its JSON report."""
        if self.running() and self.pidfile.exists():
            self.mesh.exec(self.pod, "kill", "-TERM", self.pidfile.read_text().strip(), check=False)
        out, err = self.process.communicate(timeout=60)
        assert out.strip(), f"no report; stderr: {err}"
        report: dict[str, Any] = json.loads(out)
        return report

    def kill(self) -> None:
        if self.running():
            if self.pidfile.exists():
                self.mesh.exec(self.pod, "kill", "-KILL", self.pidfile.read_text().strip(), check=False)
            self.process.kill()
            self.process.communicate(timeout=30)


@pytest.fixture
def mesh(fresh_home: Mesh) -> Iterator[Mesh]:
    fresh_home.run("up")
    fresh_home.apply(APPS)
    yield fresh_home


def _rotate(mesh: Mesh, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return mesh.run("identity", "rotate", *args, "--timeout", "90", timeout=150, check=check)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.mark.timeout(600)
def test_issuer_and_anchor_rotation_under_steady_traffic_fail_no_request(mesh: Mesh, tmp_path: Path) -> None:
    paths, clock = StatePaths(mesh.home), SystemClock()
    old_anchor = _cert(paths.anchor_cert)
    client = mesh.pod("client")
    (tmp_path / "fresh.py").write_text(FRESH_CONNECTIONS)
    # Loadgen at RATE for at most STREAM_LIMIT_S; the fresh connections at 10/s, as long.
    loadgen = Stream.start(
        mesh,
        client,
        tmp_path / "loadgen.pid",
        *("python", "-m", "isthmus.apps.loadgen", "http://srv/", "--rate", str(RATE)),
        *("--duration", str(STREAM_LIMIT_S), "--timeout", "5", "--json"),
    )
    fresh = Stream.start(
        mesh,
        client,
        tmp_path / "fresh.pid",
        *("python", str(tmp_path / "fresh.py"), "srv", "7070", str(FRESH_INTERVAL)),
        *(str(int(STREAM_LIMIT_S / FRESH_INTERVAL)), str(STREAM_LIMIT_S)),
    )
    try:
        time.sleep(3)
        assert loadgen.running() and fresh.running()
        began, began_wall = time.monotonic(), time.time()

        issuer = _rotate(mesh, "issuer")
        assert "rotated the issuer of cluster local" in issuer.stdout
        assert "3/3 sidecars serve a certificate from the new issuer" in issuer.stderr

        begin = _rotate(mesh, "anchor", "begin")
        assert "trusts the old and the new trust anchor" in begin.stdout
        new_anchor = _cert(paths.next_anchor_cert)
        bundle_during = paths.trust_bundle.read_bytes()

        # Too early: the issuer still chains to the old anchor, and so does every certificate.
        early = _rotate(mesh, "anchor", "finish", check=False)
        assert early.returncode == 1 and early.stdout == ""
        assert early.stderr.startswith(
            "isthmus: cannot finish the anchor rotation: the issuer of cluster local still chains to the old anchor"
            " (run `isthmus identity rotate issuer --all-clusters`); pods local/"
        ), early.stderr
        assert early.stderr.rstrip().endswith("; nothing was changed") and len(early.stderr.splitlines()) == 1
        assert paths.trust_bundle.read_bytes() == bundle_during and paths.next_anchor_cert.exists()

        issuers = _rotate(mesh, "issuer", "--all-clusters")
        assert "Next: isthmus identity rotate anchor finish" in issuers.stdout
        finish = _rotate(mesh, "anchor", "finish")
        assert "finished the anchor rotation: 3 sidecar(s) trust only" in finish.stdout
        ended, ended_wall = time.monotonic(), time.time()
        assert loadgen.running() and fresh.running(), "a stream stopped before the rotation ended"
        time.sleep(1)
        steady, handshakes = loadgen.stop(), fresh.stop()
    finally:
        loadgen.kill()
        fresh.kill()

    print(
        f"rotation took {ended - began:.1f}s; loadgen: {steady['successes']}/{steady['total']} ok over"
        f" {steady['elapsed_s']:.1f}s; fresh connections: {handshakes['attempts']} with"
        f" {len(handshakes['failures'])} failed, longest gap {handshakes['max_gap']:.2f}s"
    )
    # Not one failure, in either stream, and both ran from before the first step to after the last.
    assert steady["failures"] == {} and steady["successes"] == steady["total"], steady
    assert steady["elapsed_s"] >= ended - began
    assert steady["total"] >= 0.9 * RATE * steady["elapsed_s"], steady
    assert len(steady["pods"]) == 2, steady["pods"]
    assert handshakes["failures"] == [], handshakes
    assert handshakes["first"] < began_wall and handshakes["last"] > ended_wall, (handshakes, began_wall, ended_wall)
    assert handshakes["max_gap"] < 1.0, handshakes  # no stall hid a window of the rotation
    assert handshakes["attempts"] >= 0.9 * (ended - began) / FRESH_INTERVAL, handshakes

    # Every sidecar serves a certificate that chains to the new anchor, which is now the mesh's only one.
    assert _cert(paths.anchor_cert) == new_anchor and not paths.next_anchor_cert.exists()
    assert load_trust_bundle(paths.trust_bundle, clock).anchors == (new_anchor,)
    retired = list(paths.retired_anchors.glob("trust-anchor-*.crt"))
    assert [_cert(p) for p in retired] == [old_anchor]
    meshed = [p["name"] for p in mesh.pods() if p.get("sidecar")]
    assert len(meshed) == 3
    for pod in meshed:
        shown = json.loads(mesh.run("identity", "show", pod, "-o", "json").stdout)
        assert shown["chain_verified"], shown
        assert shown["trust_anchor"] == new_anchor.subject.rfc4514_string(), shown
    status = json.loads(mesh.run("identity", "rotate", "status", "-o", "json").stdout)
    assert status["bundle"] == ["current"] and not status["rotating"]
    assert {(p["anchor"], tuple(p["trusts"]), p["on_current_issuer"]) for p in status["pods"]} == {
        ("current", ("current",), True)
    }

    # The old anchor is trusted nowhere: a client certificate from it is refused at an inbound port.
    _assert_only_the_new_anchor_gets_in(mesh, paths, retired[0], tmp_path)


def _assert_only_the_new_anchor_gets_in(mesh: Mesh, paths: StatePaths, old_anchor_cert: Path, tmp: Path) -> None:
    clock = SystemClock()
    old = load_trust_anchor(old_anchor_cert, old_anchor_cert.with_suffix(".key"), clock)
    bundle = load_trust_bundle(paths.trust_bundle, clock)
    issuers = {
        "old": create_issuer(old, "local", clock),
        "new": load_issuer(paths.issuer_cert("local"), paths.issuer_key("local"), bundle, clock),
    }
    for name, issuer in issuers.items():
        key = generate_key()
        signed = issue_certificate(issuer, key.public_key(), workload_id("default", "default"), clock)
        (tmp / f"{name}.pem").write_bytes(signed.chain_pem())
        (tmp / f"{name}.key").write_bytes(private_key_pem(key))
    (tmp / "peer.py").write_text(TLS_PEER)
    outsider = mesh.pod("outsider")
    srv_ip = next(p["ip"] for p in mesh.pods("srv") if p["phase"] == "Running")

    def speak(name: str) -> tuple[int, str]:
        argv = ["python", str(tmp / "peer.py"), srv_ip, "8080", str(tmp / f"{name}.pem"), str(tmp / f"{name}.key")]
        proc = mesh.exec(outsider, *argv, str(paths.trust_bundle), check=False)
        return proc.returncode, proc.stdout

    assert speak("new") == (0, "handshake TLSv1.3 h2\nanswered\n")
    code, out = speak("old")
    assert code == 3 and out.startswith("handshake TLSv1.3 h2\nrefused") and "ALERT_UNKNOWN_CA" in out, out


# ---------------------------------------------------------------- the files each step changes (no mesh needed)


@pytest.fixture
def home(tmp_path: Path) -> StatePaths:
    """A stored mesh with clusters west and east, as `isthmus up` leaves its trust material."""
    paths = StatePaths(tmp_path / "home")
    ensure_anchor(paths, "cluster.local")
    for cluster in ("west", "east"):
        ensure_cluster(paths, cluster, "cluster.local")
    return paths


def _snapshot(paths: StatePaths) -> dict[str, bytes]:
    return {str(p.relative_to(paths.home)): p.read_bytes() for p in sorted(paths.home.rglob("*")) if p.is_file()}


def test_anchor_rotation_files_from_begin_to_finish(home: StatePaths) -> None:
    clock = SystemClock()
    old = _cert(home.anchor_cert)
    old_key = home.anchor_key.read_bytes()
    stored = rotation_files.read_stored(home, clock)
    new = rotation_files.plan_anchor_begin(home, stored, None, None, clock)
    assert not new.resumed and new.certificate != old
    rotation_files.install_anchor_begin(home, stored, new)
    assert load_trust_bundle(home.trust_bundle, clock).anchors == (old, new.certificate)
    assert _cert(home.next_anchor_cert) == new.certificate and _cert(home.anchor_cert) == old

    # Issuers (and a cluster added meanwhile) now come from the new anchor; the old issuers are kept.
    stored = rotation_files.read_stored(home, clock)
    old_west = _cert(home.issuer_cert("west"))
    issuers = rotation_files.plan_issuers(home, stored, ["west", "east"], None, clock)
    backups = rotation_files.install_issuers(home, issuers, clock.now())
    assert _cert(backups["west"]) == old_west and backups["west"].with_suffix(".key").exists()
    ensure_cluster(home, "north", "cluster.local")
    stored = rotation_files.read_stored(home, clock)
    assert {c: stored.anchors.role_of_signer(i) for c, i in stored.issuers.items()} == {
        "west": "new",
        "east": "new",
        "north": "new",
    }

    bundle, backup = rotation_files.install_anchor_finish(home, stored, clock.now())
    assert bundle.anchors == (new.certificate,)
    assert load_trust_bundle(home.trust_bundle, clock).anchors == (new.certificate,)
    assert _cert(home.anchor_cert) == new.certificate and home.anchor_key.read_bytes() == new.key_pem
    assert backup is not None and _cert(backup) == old and backup.with_suffix(".key").read_bytes() == old_key
    assert not home.next_anchor_cert.exists() and not home.next_anchor_key.exists()
    # Run again on what it read before (a finish interrupted half way): one backup, nothing lost.
    rotation_files.install_anchor_finish(home, stored, clock.now())
    assert home.anchor_key.read_bytes() == new.key_pem
    assert len(list(home.retired_anchors.glob("*.crt"))) == 1
    with pytest.raises(TrustMaterialError, match="none is in progress"):
        rotation_files.install_anchor_finish(home, rotation_files.read_stored(home, clock), clock.now())


def test_begin_refuses_an_anchor_it_cannot_rotate_to(home: StatePaths, tmp_path: Path) -> None:
    clock = SystemClock()
    stored = rotation_files.read_stored(home, clock)
    with pytest.raises(TrustMaterialError, match="is the mesh's trust anchor already"):
        rotation_files.plan_anchor_begin(home, stored, home.anchor_cert, None, clock)
    twin = _same_subject_anchor(stored.anchors.current, tmp_path / "twin.crt")
    with pytest.raises(TrustMaterialError, match="has the same subject as the mesh's trust anchor"):
        rotation_files.plan_anchor_begin(home, stored, twin, None, clock)
    new = rotation_files.plan_anchor_begin(home, stored, None, None, clock)
    rotation_files.install_anchor_begin(home, stored, new)
    stored = rotation_files.read_stored(home, clock)
    other = tmp_path / "other.crt"
    other.write_bytes(create_trust_anchor(clock).certificate_pem())
    with pytest.raises(TrustMaterialError, match="differs from the new anchor of the rotation in progress"):
        rotation_files.plan_anchor_begin(home, stored, other, None, clock)
    again = rotation_files.plan_anchor_begin(home, stored, None, None, clock)
    assert again.resumed and again.certificate == new.certificate


def test_a_users_issuer_must_come_from_the_signing_anchor_and_be_new(home: StatePaths, tmp_path: Path) -> None:
    clock = SystemClock()
    old = load_trust_anchor(home.anchor_cert, home.anchor_key, clock)
    from_old = tmp_path / "old-issuer.crt", tmp_path / "old-issuer.key"
    create_issuer(old, "west", clock).write(*from_old)
    stored = rotation_files.read_stored(home, clock)
    # Outside a rotation, an issuer from the anchor is fine; as the current one or with its key, it is not.
    assert list(rotation_files.plan_issuers(home, stored, ["west"], from_old, clock)) == ["west"]
    current = home.issuer_cert("west"), home.issuer_key("west")
    with pytest.raises(TrustMaterialError, match="is already the issuer of cluster west"):
        rotation_files.plan_issuers(home, stored, ["west"], current, clock)
    with pytest.raises(TrustMaterialError, match="clusters never share one"):
        rotation_files.plan_issuers(home, stored, ["west", "east"], from_old, clock)
    new = rotation_files.plan_anchor_begin(home, stored, None, None, clock)
    rotation_files.install_anchor_begin(home, stored, new)
    stored = rotation_files.read_stored(home, clock)
    with pytest.raises(TrustMaterialError, match="is signed by the old trust anchor"):
        rotation_files.plan_issuers(home, stored, ["west"], from_old, clock)
    # Without the new anchor's key isthmus cannot make issuers, and says how to bring one.
    home.next_anchor_key.unlink()
    with pytest.raises(TrustMaterialError, match="--cluster C --issuer CERT --issuer-key KEY"):
        rotation_files.plan_issuers(home, stored, ["west"], None, clock)


def test_bumping_the_recertify_file_counts_up(home: StatePaths) -> None:
    assert [rotation_files.bump_recertify(home, "west") for _ in range(3)] == ["1", "2", "3"]
    assert home.recertify_file("west").read_text() == "3\n" and not home.recertify_file("east").exists()


def _same_subject_anchor(anchor: x509.Certificate, path: Path) -> Path:
    key = generate_key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(anchor.subject)
        .issuer_name(anchor.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


# ---------------------------------------------------------------- bad input: one line, nothing changed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["issuer", "--issuer", "x.crt"], "--issuer needs --issuer-key too", id="issuer-without-key"),
        pytest.param(["issuer", "--issuer-key", "x.key"], "--issuer-key needs --issuer too", id="key-without-issuer"),
        pytest.param(
            ["issuer", "--all-clusters", "--issuer", "x.crt", "--issuer-key", "x.key"],
            "--issuer is one cluster's issuer: use it with --cluster C, not --all-clusters",
            id="own-issuer-for-all",
        ),
        pytest.param(["issuer", "--timeout", "0"], "--timeout must be more than 0", id="timeout"),
        pytest.param(["issuer", "--lifetime-days", "0"], "--lifetime-days must be a whole number", id="lifetime"),
        pytest.param(
            ["anchor", "finish"],
            "no anchor rotation is in progress; start one with `isthmus identity rotate anchor begin`",
            id="finish-without-begin",
        ),
        pytest.param(
            ["anchor", "begin", "--trust-anchor-key", "k.pem"],
            "k.pem: is a trust anchor key; pass its certificate with --trust-anchor",
            id="key-without-anchor",
        ),
        pytest.param(["anchor", "begin"], "no local mesh is running at", id="no-mesh"),
    ],
)
def test_bad_input_gets_one_line_and_changes_nothing(
    home: StatePaths, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    before = _snapshot(home)
    code = main(["--home", str(home.home), "identity", "rotate", *argv])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("isthmus: ") and message in err and len(err.splitlines()) == 1, err
    assert _snapshot(home) == before


def test_a_malformed_anchor_file_is_named(home: StatePaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "anchor.pem"
    bad.write_text("not a certificate\n")
    before = _snapshot(home)
    code = main(["--home", str(home.home), "identity", "rotate", "anchor", "begin", "--trust-anchor", str(bad)])
    err = capsys.readouterr().err
    assert code == 1 and err == f"isthmus: {bad}: is not PEM: expected '-----BEGIN CERTIFICATE-----'\n"
    assert _snapshot(home) == before


def test_without_a_mesh_status_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--home", str(tmp_path / "none"), "identity", "rotate", "status"])
    assert code == 1 and "holds no mesh (no trust anchor yet); start one with `isthmus up`" in capsys.readouterr().err


def test_cluster_and_all_clusters_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["identity", "rotate", "issuer", "--cluster", "west", "--all-clusters"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


# ---------------------------------------------------------------- reading sidecars and showing status (pure)


def _dump(chain_pem: str | None, bundle_pem: str | None) -> str:
    """An Envoy secrets config dump as the admin API answers LIVE_PATH."""
    configs = []
    if chain_pem is not None:
        secret = {"name": "workload", "tls_certificate": {"certificate_chain": {"inline_string": chain_pem}}}
        configs.append({"name": "workload", "secret": {"@type": "x", **secret}})
    if bundle_pem is not None:
        secret = {"name": "trust-bundle", "validation_context": {"trusted_ca": {"inline_string": bundle_pem}}}
        configs.append({"name": "trust-bundle", "secret": {"@type": "x", **secret}})
    return json.dumps({"configs": configs})


def test_sidecars_are_read_and_judged_from_their_secrets_dumps(home: StatePaths) -> None:
    clock = SystemClock()
    stored = rotation_files.read_stored(home, clock)
    issuer = load_issuer(home.issuer_cert("west"), home.issuer_key("west"), stored.bundle, clock)
    signed = issue_certificate(issuer, generate_key().public_key(), workload_id("default", "web"), clock)
    serving, idle, broken, garbled = (PodRef("west", "default", n) for n in ("web-1", "web-2", "web-3", "web-4"))
    scraper = StaticAdminScraper(
        {
            serving: {LIVE_PATH: _dump(signed.chain_pem().decode(), stored.bundle.pem().decode())},
            idle: {LIVE_PATH: _dump(None, None)},
            garbled: {LIVE_PATH: "<html>"},
        },
        errors={broken: "connection refused (its Envoy is not running)"},
    )
    live = live_sidecars(scraper, [serving, idle, broken, garbled])
    assert [s.pod for s in live] == ["web-1", "web-2", "web-3", "web-4"]
    assert live[0].chain[0] == signed.leaf and live[0].bundle == stored.bundle.anchors
    assert live[1].chain == () and live[1].error is None
    assert live[2].error == "connection refused (its Envoy is not running)"
    assert live[3].error == "its admin API answered with something that is not JSON"

    view = status_view(stored, judge_all(stored, live), datetime(2030, 1, 1, tzinfo=UTC))
    assert [(p["pod"], p["anchor"], p["trusts"], p["on_current_issuer"]) for p in view["pods"]] == [
        ("web-1", "current", ["current"], True),
        ("web-2", None, [], False),
        ("web-3", None, [], False),
        ("web-4", None, [], False),
    ]
    assert view["rotating"] is False and view["bundle"] == ["current"]
    assert view["phase"] == "steady; not every sidecar is known to serve a certificate from its cluster's issuer"
    assert view["next"] == "wait for west/web-3, west/web-4"
    text = render_status(view)
    assert text.startswith(f"Phase: {view['phase']}\nNext:  {view['next']}\n")
    assert "Trust bundle: current" in text
    rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("west ") and "web-" in line}
    assert rows["web-1"].split()[3:6] == ["yes", "current", "current"]
    assert "no certificate loaded yet (unused)" in rows["web-2"]
    assert "connection refused" in rows["web-3"]
