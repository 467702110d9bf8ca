"""A cluster's multi-cluster gateway on the local platform: `isthmus multicluster install`, its probe on the
wan, mTLS from another cluster to exported services only (TLS inside TLS, so the backend sees the caller's
own identity), refusal of everything else, and `uninstall`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.clock import SystemClock
from isthmus.identity.csr import generate_key, private_key_pem
from isthmus.identity.load import load_issuer, load_trust_bundle
from isthmus.identity.signing import issue_certificate
from isthmus.identity.spiffe import workload_id
from isthmus.platform.local.paths import StatePaths
from tests.platform.harness import Mesh, wait_for
from tests.platform.test_lifecycle import SMALL
from tests.platform.test_multicluster_net import PROBE

CALLER_ID = "spiffe://cluster.local/ns/shop/sa/frontend"

# east: `api` is exported; `hidden` selects the same pods but is not.
EXPORTS = """
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  labels: {mirror.isthmus.io/exported: "true"}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: hidden, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: http}]
"""

# What a west sidecar will do: mTLS to the gateway naming the service in SNI, and inside it
# the caller's own mTLS to the backend's sidecar, carrying one HTTP/1.1 request.
# Prints "ok <body>" or "refused <why>". Bounded: 5 s per socket operation.
TUNNEL = """
import socket, ssl, sys
gateway, sni, anchors = sys.argv[1], sys.argv[2], sys.argv[3]
chain, key = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)

def context(alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # mesh certificates name SPIFFE IDs, not hosts
    ctx.load_verify_locations(anchors)
    if chain:
        ctx.load_cert_chain(chain, key)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx

try:
    outer = context(None).wrap_socket(socket.create_connection((gateway, 4143), timeout=5), server_hostname=sni)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    inner = context(["http/1.1"]).wrap_bio(incoming, outgoing, server_hostname=sni)

    def pump(op):
        while True:
            try:
                result = op()
            except ssl.SSLWantReadError:
                outer.sendall(outgoing.read())
                data = outer.recv(65536)
                if not data:
                    raise ConnectionError("the gateway closed the connection")
                incoming.write(data)
                continue
            outer.sendall(outgoing.read())
            return result

    pump(inner.do_handshake)
    pump(lambda: inner.write(b"GET / HTTP/1.1\\r\\nHost: api\\r\\nConnection: close\\r\\n\\r\\n"))
    response = b""
    while True:
        try:
            chunk = pump(lambda: inner.read(65536))
        except (ssl.SSLZeroReturnError, ConnectionError):
            break
        if not chunk:
            break
        response += chunk
        if b"\\r\\n\\r\\n" in response and response.rstrip().endswith(b"}"):
            break
    head, _, body = response.partition(b"\\r\\n\\r\\n")
    print("ok", head.split(b"\\r\\n")[0].decode(), body.decode().strip())
except (ssl.SSLError, OSError) as e:
    print("refused", type(e).__name__, e)
"""


@pytest.fixture(scope="module")
def gateway_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh = Mesh(tmp_path_factory.mktemp("mc-gw") / "home")
    try:
        mesh.run("up", "--clusters", "west,east")
        mesh.apply(SMALL, "--cluster", "east")
        mesh.apply(EXPORTS, "--cluster", "east")  # labels SMALL's `api`, adds `hidden`
        mesh.apply(SMALL + "---" + PROBE, "--cluster", "west")
        mesh.run("multicluster", "install", "--cluster", "east")
        yield mesh
    finally:
        mesh.run("down", check=False)


@pytest.fixture(scope="module")
def certs(gateway_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys and certificates for CALLER_ID: from west's issuer ("own") and from another anchor ("foreign")."""
    out = tmp_path_factory.mktemp("mc-certs")
    clock, paths = SystemClock(), StatePaths(gateway_mesh.home)
    bundle = load_trust_bundle(paths.trust_bundle, clock)
    issuers = {
        "own": load_issuer(paths.issuer_cert("west"), paths.issuer_key("west"), bundle, clock),
        "foreign": create_issuer(create_trust_anchor(clock), "west", clock),
    }
    for name, issuer in issuers.items():
        key = generate_key()
        signed = issue_certificate(issuer, key.public_key(), workload_id("shop", "frontend"), clock)
        (out / f"{name}.pem").write_bytes(signed.chain_pem())
        (out / f"{name}.key").write_bytes(private_key_pem(key))
    (out / "tunnel.py").write_text(TUNNEL)
    return out


def _gateway_ip(mesh: Mesh, cluster: str) -> str:
    clusters = json.loads(mesh.run("status", "-o", "json").stdout)["clusters"]
    return str(next(c["gateway_wan_ip"] for c in clusters if c["name"] == cluster))


def _through_gateway(mesh: Mesh, certs: Path, sni: str, cert: str | None) -> str:
    probe = mesh.pod("probe", cluster="west")
    paths = StatePaths(mesh.home)
    argv = ["python", str(certs / "tunnel.py"), _gateway_ip(mesh, "east"), sni, str(paths.trust_bundle)]
    if cert:
        argv += [str(certs / f"{cert}.pem"), str(certs / f"{cert}.key")]
    return mesh.run("exec", "--cluster", "west", probe, "--", *argv, timeout=60).stdout.strip()


def test_the_gateway_is_a_pod_of_its_namespace_and_passes_check(gateway_mesh: Mesh) -> None:
    pods = gateway_mesh.pods(cluster="east")
    gateways = [p for p in pods if p["namespace"] == "isthmus-multicluster"]
    assert len(gateways) == 1 and gateways[0]["service_account"] == "isthmus-gateway", gateways
    assert gateways[0]["ready"] and gateways[0]["sidecar"]["running"]
    table = gateway_mesh.run("get", "pods", "-n", "isthmus-multicluster", "--cluster", "east").stdout
    assert "isthmus-gateway-" in table and "Running" in table
    check = json.loads(gateway_mesh.run("check", "-o", "json").stdout)
    assert all(r["ok"] for r in check), check
    assert any("[east]" in r["name"] and "(4/4)" in r["name"] for r in check), check  # api x2, client, gateway


def test_the_gateways_probe_answers_on_the_wan_from_another_cluster(gateway_mesh: Mesh) -> None:
    for deployment in ("probe", "client"):  # without a sidecar, and through one
        pod = gateway_mesh.pod(deployment, cluster="west")
        url = f"http://{_gateway_ip(gateway_mesh, 'east')}:4191/ready"
        out = gateway_mesh.run("exec", "--cluster", "west", pod, "--", "curl", "-sS", "--fail", "-m", "5", url)
        assert out.stdout.strip() == "LIVE"


@pytest.mark.parametrize(
    "sni", ["api.shop.svc.cluster.local", "80.api.shop.svc.cluster.local"], ids=["service", "service-port"]
)
def test_a_mesh_certificate_reaches_an_exported_service_and_the_backend_sees_the_caller(
    gateway_mesh: Mesh, certs: Path, sni: str
) -> None:
    out = _through_gateway(gateway_mesh, certs, sni, "own")
    assert out.startswith("ok HTTP/1.1 200"), out
    body = json.loads(out.split(" ", 4)[4])
    assert body["cluster"] == "east" and body["pod"].startswith("api-")
    assert body["headers"]["x-isthmus-client-id"] == CALLER_ID  # verified by east's sidecar, end to end


@pytest.mark.parametrize(
    ("sni", "cert"),
    [
        pytest.param("hidden.shop.svc.cluster.local", "own", id="not-exported"),
        pytest.param("client.shop.svc.cluster.local", "own", id="no-such-service"),
        pytest.param("api.shop.svc.cluster.local", "foreign", id="another-anchor"),
        pytest.param("api.shop.svc.cluster.local", None, id="no-certificate"),
    ],
)
def test_everything_else_is_refused(gateway_mesh: Mesh, certs: Path, sni: str, cert: str | None) -> None:
    out = _through_gateway(gateway_mesh, certs, sni, cert)
    assert out.startswith("refused"), out


def test_uninstall_removes_the_gateway(gateway_mesh: Mesh, certs: Path) -> None:
    out = gateway_mesh.run("multicluster", "uninstall", "--cluster", "east").stdout
    assert "deployment.apps/isthmus-gateway deleted" in out
    wait_for(
        lambda: not [p for p in gateway_mesh.pods(cluster="east") if p["namespace"] == "isthmus-multicluster"],
        30,
        "the gateway pod to go",
    )
    assert _through_gateway(gateway_mesh, certs, "api.shop.svc.cluster.local", "own").startswith("refused")
    again = gateway_mesh.run("multicluster", "uninstall", "--cluster", "east").stdout
    assert "no gateway is installed in cluster east" in again
