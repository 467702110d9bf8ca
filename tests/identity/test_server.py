"""The identity service end to end: the agent's client, TLS over a Unix socket, real signing."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.identity.client import CertificateRequestError, IssuedCertificate, request_certificate
from isthmus.identity.csr import build_csr, generate_key
from isthmus.identity.http_wire import HttpLimits
from isthmus.identity.service import CERTIFICATES_PATH
from tests.identity.helpers import DB, WEB, Mesh, make_csr, openssl_mtls
from tests.identity.served import Served


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(Mesh(), tmp_path / "identity.sock")
    yield s
    s.close()


def ask(served: Served, token: str, csr: bytes | str, **kwargs: str) -> IssuedCertificate:
    return request_certificate(
        served.address,
        token,
        csr if isinstance(csr, str) else csr.decode(),
        trust_bundle_pem=kwargs.get("bundle", served.bundle_pem),
        server_id=kwargs.get("server_id", served.server_id),
    )


def test_a_valid_token_gets_a_certificate_that_verifies_to_the_anchor(served: Served, tmp_path: Path) -> None:
    web_key, db_key = generate_key(), generate_key()
    web = ask(served, served.mesh.token(WEB), build_csr(web_key, WEB.uri))
    db = ask(served, served.mesh.token(DB), build_csr(db_key, DB.uri))
    chain = x509.load_pem_x509_certificates(web.certificate_chain.encode())
    assert served.mesh.bundle.verify_workload_chain(chain, served.mesh.clock) == WEB
    assert web.spiffe_id == WEB.uri and web.expires_at.endswith("Z")
    assert web.trust_bundle == served.bundle_pem
    # And OpenSSL agrees: the two workloads can do mutual TLS with what they got.
    server, client = (db.certificate_chain.encode(), db_key), (web.certificate_chain.encode(), web_key)
    seen = openssl_mtls(tmp_path, server, client, served.mesh.bundle.pem())
    assert seen == ([WEB.uri], [DB.uri])
    assert served.service.stats.issued == 2


def test_no_token_is_401(served: Served) -> None:
    conn = served.http()
    conn.request("POST", CERTIFICATES_PATH, body=json.dumps({"csr": make_csr().decode()}))
    response = conn.getresponse()
    assert response.status == 401
    assert response.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert "Authorization: Bearer" in json.loads(response.read())["error"]
    assert served.service.stats.issued == 0


def test_a_forged_token_is_401(served: Served) -> None:
    stranger = Mesh()  # same cluster name, another secret
    with pytest.raises(CertificateRequestError) as err:
        ask(served, stranger.token(WEB), make_csr())
    assert err.value.status == 401 and "signature does not match" in err.value.message


def test_a_csr_for_x_with_a_token_for_y_is_403_and_nothing_is_issued(served: Served) -> None:
    with pytest.raises(CertificateRequestError) as err:
        ask(served, served.mesh.token(DB), make_csr())  # the CSR asks for WEB
    assert err.value.status == 403
    assert WEB.uri in err.value.message and DB.uri in err.value.message
    assert served.service.stats.issued == 0


@pytest.mark.parametrize(
    ("csr", "fragment"),
    [
        pytest.param("garbage", "is not PEM", id="garbage"),
        pytest.param(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "not a valid PEM CSR",
            id="bad-pem",
        ),
    ],
)
def test_a_garbage_csr_is_400(served: Served, csr: str, fragment: str) -> None:
    with pytest.raises(CertificateRequestError) as err:
        ask(served, served.mesh.token(WEB), csr)
    assert err.value.status == 400 and fragment in err.value.message


def test_a_client_trusting_another_anchor_refuses_the_service(served: Served) -> None:
    with pytest.raises(CertificateRequestError) as err:
        ask(served, served.mesh.token(WEB), make_csr(), bundle=Mesh().bundle.pem().decode())
    assert err.value.status == 0 and "certificate verify failed" in err.value.message
    assert served.service.stats.issued == 0 and not served.service.stats.refused  # no request was ever sent


def test_a_client_refuses_a_service_with_the_wrong_identity(served: Served) -> None:
    wrong = "spiffe://cluster.local/ns/isthmus-system/sa/someone-else"
    with pytest.raises(CertificateRequestError) as err:
        ask(served, served.mesh.token(WEB), make_csr(), server_id=wrong)
    assert f"presented identity {served.server_id}, expected {wrong}; refusing to send the token" in err.value.message
    assert not served.service.stats.refused


def test_plaintext_to_the_tls_socket_gets_nothing(served: Served) -> None:
    with served.raw_socket() as s:
        request = f"POST {CERTIFICATES_PATH} HTTP/1.1\r\nAuthorization: Bearer {served.mesh.token(WEB)}\r\n"
        body = json.dumps({"csr": make_csr().decode()})
        s.sendall(f"{request}Content-Length: {len(body)}\r\n\r\n{body}".encode())
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    assert b"HTTP/" not in received and b"CERTIFICATE" not in received
    assert len(received) <= 7  # at most a TLS alert record
    assert served.service.stats.issued == 0


def test_works_over_loopback_tcp(tmp_path: Path) -> None:
    s = Served(Mesh(), None, tcp=True)
    try:
        assert ask(s, s.mesh.token(WEB), make_csr()) is not None
        assert s.service.stats.issued == 1
    finally:
        s.close()


def test_keep_alive_serves_several_requests_on_one_connection(served: Served) -> None:
    conn = served.http()
    for _ in range(3):
        body = json.dumps({"csr": make_csr().decode()})
        conn.request(
            "POST", CERTIFICATES_PATH, body=body, headers={"Authorization": f"Bearer {served.mesh.token(WEB)}"}
        )
        response = conn.getresponse()
        assert response.status == 200
        response.read()
    assert served.service.stats.issued == 3


def test_the_service_renews_its_own_certificate_for_new_connections(served: Served) -> None:
    def serial_seen() -> int:
        with served.tls_socket() as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der).serial_number

    before = serial_seen()
    assert before == served.server.certificate.serial
    old_connection = served.tls_socket()
    renewed = served.run(_renew(served))
    assert serial_seen() == renewed != before
    old_connection.close()


async def _renew(served: Served) -> int:
    return served.server.renew_certificate().serial


def _pem(data: bytes) -> str:
    return (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(data).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(Mesh(), tmp_path_factory.mktemp("fuzz") / "identity.sock")
    yield s
    s.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.one_of(st.binary(max_size=2048).map(lambda b: b.decode("latin-1")), st.binary(max_size=1024).map(_pem)))
def test_random_bytes_as_a_csr_always_get_400(shared: Served, data: str) -> None:
    conn = shared.http()
    body = json.dumps({"csr": data})
    conn.request("POST", CERTIFICATES_PATH, body=body, headers={"Authorization": f"Bearer {shared.mesh.token(WEB)}"})
    response = conn.getresponse()
    assert response.status == 400, response.read()
    assert "error" in json.loads(response.read())
    conn.close()
    assert shared.service.stats.issued == 0


def test_the_service_still_serves_after_the_fuzzing(shared: Served) -> None:
    assert ask(shared, shared.mesh.token(WEB), make_csr()) is not None


def test_a_tls_client_without_tls13_is_refused(served: Served) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.load_verify_locations(cadata=served.bundle_pem)
    with pytest.raises(ssl.SSLError), context.wrap_socket(served.raw_socket()):
        pass


class _BrokenVerifier:
    trust_domain = "cluster.local"

    def verify(self, token: str) -> object:
        raise RuntimeError("bug")


def test_a_bug_costs_one_request_not_the_service(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    good = served.service.tokens
    served.service.tokens = _BrokenVerifier()  # type: ignore[assignment]
    with pytest.raises(CertificateRequestError) as err:
        ask(served, served.mesh.token(WEB), make_csr())
    assert err.value.status == 500
    assert "identity service failed" in caplog.text
    served.service.tokens = good
    assert ask(served, served.mesh.token(WEB), make_csr()) is not None


def test_connections_beyond_the_limit_are_closed(tmp_path: Path) -> None:
    s = Served(Mesh(), tmp_path / "identity.sock", limits=HttpLimits(max_connections=1))
    try:
        with s.tls_socket() as held:
            held.sendall(b"")  # the first connection stays open, holding the only slot
            with pytest.raises(CertificateRequestError, match="cannot reach"):
                ask(s, s.mesh.token(WEB), make_csr())
        deadline = time.monotonic() + 10
        while s.server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ask(s, s.mesh.token(WEB), make_csr()) is not None
    finally:
        s.close()


def test_serve_forever_renews_the_service_certificate_at_70_percent(tmp_path: Path) -> None:
    s = Served(Mesh(), tmp_path / "identity.sock", own_lifetime=timedelta(minutes=10))
    try:
        first = s.server.certificate.serial
        assert s.server.renew_at == s.mesh.clock.now() + timedelta(minutes=7)
        s.server.renew_check_seconds = 0.02
        task = asyncio.run_coroutine_threadsafe(s.server.serve_forever(), s.loop)
        s.mesh.clock.advance(timedelta(minutes=6, seconds=59))
        time.sleep(0.2)
        assert s.server.certificate.serial == first
        s.mesh.clock.advance(timedelta(seconds=1))
        deadline = time.monotonic() + 10
        while s.server.certificate.serial == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.server.certificate.serial != first
        task.cancel()
    finally:
        s.close()
