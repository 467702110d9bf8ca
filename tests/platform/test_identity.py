"""Identity on a running mesh: what `identity show` reads from sidecars, who gets in, who gets a certificate,
and the user's own trust material in `isthmus up`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle
from isthmus.identity.client import CertificateRequestError, request_certificate
from isthmus.identity.clock import SystemClock
from isthmus.identity.csr import build_csr, generate_key, private_key_pem
from isthmus.identity.load import load_issuer, load_trust_bundle
from isthmus.identity.signing import issue_certificate
from isthmus.identity.spiffe import workload_id
from isthmus.platform.local.paths import StatePaths
from isthmus.proxy.certify import IDENTITY_SERVICE_ID
from tests.platform.harness import Mesh

WEB_ID = "spiffe://cluster.local/ns/default/sa/web"

POLICY = """
apiVersion: v1
kind: Namespace
metadata:
  name: locked
  annotations: {config.isthmus.io/default-inbound-policy: all-authenticated}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: srv, namespace: locked}
spec:
  replicas: 1
  selector: {matchLabels: {app: srv}}
  template:
    metadata: {labels: {app: srv}}
    spec:
      containers:
        - name: app
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080"]
          ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: srv, namespace: locked}
spec:
  selector: {app: srv}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: guarded}
spec:
  replicas: 1
  selector: {matchLabels: {app: guarded}}
  template:
    metadata:
      labels: {app: guarded}
      annotations: {config.isthmus.io/default-inbound-policy: all-authenticated}
    spec:
      containers:
        - name: app
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080"]
          ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: guarded}
spec:
  selector: {app: guarded}
  ports: [{port: 80, targetPort: http}]
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

# A port of its own, so that its Envoy uses (and so loads) the workload certificate with no services around.
APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
        - name: app
          command: ["python", "-m", "isthmus.apps.whoami", "--port", "8080"]
          ports: [{containerPort: 8080}]
"""

# A mesh peer on an inbound port: TLS 1.3 with ALPN h2 and a client certificate. The server checks that
# certificate once the handshake is done, so a refused peer reads the server's alert first; a trusted one
# hears nothing until it sends the HTTP/2 preface, and then gets the server's SETTINGS.
TLS_PEER = """
import socket, ssl, sys
host, port, chain, key, anchors = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.check_hostname = False
ctx.load_verify_locations(anchors)
ctx.load_cert_chain(chain, key)
ctx.set_alpn_protocols(["h2"])
try:
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        print("handshake", tls.version(), tls.selected_alpn_protocol())
        tls.settimeout(3)
        try:
            data = tls.recv(100)
        except TimeoutError:
            tls.settimeout(5)
            tls.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            data = tls.recv(100)
        print("answered" if data else "closed")
        sys.exit(0 if data else 3)
except (ssl.SSLError, OSError) as e:
    print("refused", e)
    sys.exit(3)
"""


def _show(mesh: Mesh, pod: str, *extra: str) -> dict[str, object]:
    found: dict[str, object] = json.loads(mesh.run("identity", "show", pod, "-o", "json", *extra).stdout)
    return found


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# ---------------------------------------------------------------- identity show


def test_identity_show_reads_the_web_pods_certificate_from_its_sidecar(demo_mesh: Mesh) -> None:
    pod = demo_mesh.pod("web")
    text = demo_mesh.run("identity", "show", pod).stdout
    assert f"Identity:     {WEB_ID}\n" in text
    assert "(the issuer of cluster local)" in text and "(chain verified)" in text
    found = _show(demo_mesh, pod)
    assert found["spiffe_id"] == WEB_ID and found["pod"] == pod
    remaining = timedelta(seconds=int(str(found["remaining_seconds"])))
    assert timedelta(hours=12) < remaining <= timedelta(hours=24)  # renewed at ~70% of 24 h
    # It is the certificate Envoy serves with: the same serial as its /certs admin page.
    certs = json.loads(demo_mesh.exec(pod, "curl", "-sS", "-m", "5", "http://127.0.0.1:4191/certs").stdout)
    # Compared as numbers: Envoy pads the hex to whole bytes ("0291…"), we print it unpadded.
    serials = {int(c["serial_number"], 16) for entry in certs["certificates"] for c in entry["cert_chain"]}
    assert serials == {int(found["serial"], 16)}


# ---------------------------------------------------------------- inbound policy, foreign anchors


@pytest.fixture(scope="module")
def policy_mesh(demo_mesh: Mesh) -> Iterator[Mesh]:
    demo_mesh.apply(POLICY)
    try:
        yield demo_mesh
    finally:
        demo_mesh.run("delete", "-f", "-", input=POLICY, check=False)


def _curl_code(mesh: Mesh, pod: str, url: str) -> int:
    return mesh.exec(pod, "curl", "-sS", "-o", "/dev/null", "-m", "5", url, check=False).returncode


@pytest.mark.parametrize(
    ("url", "outsider_gets_in"),
    [
        pytest.param("http://srv.locked/", False, id="namespace-all-authenticated"),
        pytest.param("http://guarded/", False, id="pod-all-authenticated"),
        pytest.param("http://web/", True, id="default-all-unauthenticated"),
    ],
)
def test_inbound_policy_decides_whether_plaintext_from_outside_the_mesh_gets_in(
    policy_mesh: Mesh, url: str, outsider_gets_in: bool
) -> None:
    outsider, meshed = policy_mesh.pod("outsider"), policy_mesh.pod("client")
    assert _curl_code(policy_mesh, meshed, url) == 0
    code = _curl_code(policy_mesh, outsider, url)
    assert (code == 0) is outsider_gets_in, f"curl {url} from {outsider} exited {code}"


def test_identity_show_on_a_pod_without_a_sidecar_says_so(policy_mesh: Mesh) -> None:
    outsider = policy_mesh.pod("outsider")
    proc = policy_mesh.run("identity", "show", outsider, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"pod {outsider} has no sidecar (isthmus.io/inject: disabled)" in proc.stderr


def test_a_client_certificate_from_another_anchor_is_refused(policy_mesh: Mesh, tmp_path: Path) -> None:
    """From outside the mesh, speak to a meshed pod's app port as a sidecar would: only this mesh's chain gets in."""
    clock, paths = SystemClock(), StatePaths(policy_mesh.home)
    bundle = load_trust_bundle(paths.trust_bundle, clock)
    issuers = {
        "foreign": create_issuer(create_trust_anchor(clock), "local", clock),
        # The control: the same request with a certificate from this mesh's own issuer gets an answer.
        "own": load_issuer(paths.issuer_cert("local"), paths.issuer_key("local"), bundle, clock),
    }
    for name, issuer in issuers.items():
        key = generate_key()
        signed = issue_certificate(issuer, key.public_key(), workload_id("default", "default"), clock)
        (tmp_path / f"{name}.pem").write_bytes(signed.chain_pem())
        (tmp_path / f"{name}.key").write_bytes(private_key_pem(key))
    (tmp_path / "peer.py").write_text(TLS_PEER)
    outsider = policy_mesh.pod("outsider")
    web_ip = next(p["ip"] for p in policy_mesh.pods("web") if p["phase"] == "Running")

    def speak(name: str) -> tuple[int, str]:
        argv = ["python", str(tmp_path / "peer.py"), web_ip, "8080", str(tmp_path / f"{name}.pem")]
        proc = policy_mesh.exec(outsider, *argv, str(tmp_path / f"{name}.key"), str(paths.trust_bundle), check=False)
        return proc.returncode, proc.stdout

    code, out = speak("own")
    assert (code, out) == (0, "handshake TLSv1.3 h2\nanswered\n"), out
    code, out = speak("foreign")
    assert code == 3 and out.startswith("handshake TLSv1.3 h2\nrefused") and "ALERT_UNKNOWN_CA" in out, out
    openssl = policy_mesh.exec(
        outsider,
        "sh",
        "-c",
        f"openssl s_client -connect {web_ip}:8080 -tls1_3 -alpn h2 -cert {tmp_path}/foreign.pem"
        f" -key {tmp_path}/foreign.key -CAfile {paths.trust_bundle} -quiet </dev/null",
        check=False,
    )
    assert openssl.returncode != 0 and "alert unknown ca" in openssl.stderr, openssl.stderr


# ---------------------------------------------------------------- the identity service


def test_the_identity_service_signs_only_what_the_token_proves(demo_mesh: Mesh) -> None:
    paths = StatePaths(demo_mesh.home)
    web = next(p for p in demo_mesh.pods("web") if p["phase"] == "Running")
    token = (paths.pod_dir("local", "default", web["name"]) / "token").read_text().strip()

    def ask(identity: str, token: str) -> None:
        request_certificate(
            str(paths.identity_socket("local")),
            token,
            build_csr(generate_key(), identity).decode(),
            trust_bundle_pem=paths.trust_bundle.read_text(),
            server_id=IDENTITY_SERVICE_ID.format(td="cluster.local"),
        )

    ask(WEB_ID, token)  # the control: the web pod's token proves web
    with pytest.raises(CertificateRequestError) as refused:
        ask("spiffe://cluster.local/ns/default/sa/db", token)
    assert refused.value.status == 403
    assert "asks for identity 'spiffe://cluster.local/ns/default/sa/db'" in refused.value.message
    for bad in ("", "not-a-token", token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")):
        with pytest.raises(CertificateRequestError) as unauthenticated:
            ask(WEB_ID, bad)
        assert unauthenticated.value.status == 401, (bad, unauthenticated.value)


# ---------------------------------------------------------------- the user's own trust material


def test_up_with_a_malformed_anchor_names_the_file_and_starts_nothing(fresh_home: Mesh, tmp_path: Path) -> None:
    bad = tmp_path / "anchor.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    proc = fresh_home.run("up", "--trust-anchor", str(bad), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"isthmus: {bad}: holds a malformed PEM certificate")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not fresh_home.home.exists()


def test_two_clusters_share_the_users_anchor_and_never_an_issuer(fresh_home: Mesh, tmp_path: Path) -> None:
    anchor, anchor_key = tmp_path / "anchor.crt", tmp_path / "anchor.key"
    fresh_home.run("identity", "trust-anchor", "create", "--cert", str(anchor), "--key", str(anchor_key))
    fresh_home.run(
        "up", "--clusters", "east,west", "--trust-anchor", str(anchor), "--trust-anchor-key", str(anchor_key)
    )
    paths = StatePaths(fresh_home.home)
    assert _cert(paths.anchor_cert) == _cert(anchor)
    bundle = TrustBundle.of([_cert(anchor)])
    east, west = _cert(paths.issuer_cert("east")), _cert(paths.issuer_cert("west"))
    assert east.public_key() != west.public_key()
    assert bundle.signer_of(east) == bundle.signer_of(west) == _cert(anchor)
    # And the running sidecars carry them: each cluster's workload chains through its own issuer.
    for cluster in ("east", "west"):
        fresh_home.apply(APP, "--cluster", cluster)
        found = _show(fresh_home, fresh_home.pod("app", cluster), "--cluster", cluster)
        assert found["issuer"] == {
            "cluster": cluster,
            "serial": f"{_cert(paths.issuer_cert(cluster)).serial_number:x}",
            "subject": f"CN=Isthmus issuer {cluster},O=cluster.local",
        }
        assert found["chain_verified"] and found["trust_anchor"] == _cert(anchor).subject.rfc4514_string()

    other, other_key = tmp_path / "other.crt", tmp_path / "other.key"
    fresh_home.run("identity", "trust-anchor", "create", "--cert", str(other), "--key", str(other_key))
    proc = fresh_home.run("up", "--trust-anchor", str(other), "--trust-anchor-key", str(other_key), check=False)
    assert proc.returncode == 1 and "differs from the trust anchor this mesh already uses" in proc.stderr
    assert "isthmus down --purge" in proc.stderr
    assert _cert(paths.anchor_cert) == _cert(anchor)


def test_up_with_the_anchor_certificate_and_a_users_issuer(fresh_home: Mesh, tmp_path: Path) -> None:
    anchor, anchor_key = tmp_path / "anchor.crt", tmp_path / "anchor.key"
    issuer, issuer_key = tmp_path / "local.crt", tmp_path / "local.key"
    fresh_home.run("identity", "trust-anchor", "create", "--cert", str(anchor), "--key", str(anchor_key))
    fresh_home.run(
        "identity", "issuer", "create", "--trust-anchor", str(anchor), "--trust-anchor-key", str(anchor_key),
        "--cluster", "local", "--cert", str(issuer), "--key", str(issuer_key), "--lifetime-days", "30",
    )  # fmt: skip
    fresh_home.run("up", "--trust-anchor", str(anchor), "--issuer", str(issuer), "--issuer-key", str(issuer_key))
    paths = StatePaths(fresh_home.home)
    assert not paths.anchor_key.exists()  # the anchor's key stayed with the user
    fresh_home.apply(APP)
    found = _show(fresh_home, fresh_home.pod("app"))
    assert found["issuer"]["serial"] == f"{_cert(issuer).serial_number:x}"  # type: ignore[index]

    check = fresh_home.run("check")  # a warning is not a failure
    assert "‼ [local] issuer is valid for at least 60 days" in check.stdout
    assert "in 29 days: rotate it before then" in check.stdout
    assert "isthmus identity issuer create --cluster local" in check.stdout

    # Without the anchor's key, a new cluster needs an issuer of the user's.
    proc = fresh_home.run("up", "--clusters", "second", check=False)
    assert proc.returncode == 1 and "cluster second: has no issuer" in proc.stderr
    assert [c["name"] for c in json.loads(fresh_home.run("status", "-o", "json").stdout)["clusters"]] == ["local"]
