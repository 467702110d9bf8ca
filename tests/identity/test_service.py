"""The identity service's decisions, request by request, without sockets."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from cryptography import x509

from isthmus.identity.anchors import create_issuer
from isthmus.identity.bundle import TrustBundle
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.http_wire import HttpRequest
from isthmus.identity.service import CERTIFICATES_PATH, IdentityService
from isthmus.identity.signing import SigningPolicy
from isthmus.identity.tokens import HmacTokenVerifier
from tests.identity.helpers import DB, WEB, Mesh, make_csr, uri


def service_for(mesh: Mesh, **kwargs: object) -> IdentityService:
    return IdentityService(mesh.issuer, mesh.bundle, mesh.verifier(), mesh.clock, **kwargs)  # type: ignore[arg-type]


def post(token: str | None, body: bytes, *, method: str = "POST", target: str = CERTIFICATES_PATH) -> HttpRequest:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return HttpRequest(method, target, headers, body, keep_alive=True)


def csr_body(csr: bytes) -> bytes:
    return json.dumps({"csr": csr.decode()}).encode()


def test_a_valid_request_gets_the_chain() -> None:
    mesh = Mesh()
    service = service_for(mesh, policy=SigningPolicy(lifetime=timedelta(minutes=10)))
    response = service.handle(post(mesh.token(WEB), csr_body(make_csr())))
    assert response.status == 200
    body = dict(response.body)
    chain = x509.load_pem_x509_certificates(body["certificate_chain"].encode())
    assert mesh.bundle.verify_workload_chain(chain, mesh.clock) == WEB
    assert body["spiffe_id"] == WEB.uri
    assert datetime.fromisoformat(body["expires_at"]) == chain[0].not_valid_after_utc
    assert chain[0].not_valid_after_utc - mesh.clock.now() == timedelta(minutes=10)
    assert body["serial"] == f"{chain[0].serial_number:x}"
    assert body["trust_bundle"] == mesh.bundle.pem().decode()
    assert service.stats.issued == 1 and not service.stats.refused


@pytest.mark.parametrize(
    ("request_", "status", "fragment"),
    [
        pytest.param(post("t", b"", target="/"), 404, "POST /v1/certificates", id="wrong-path"),
        pytest.param(post("t", b"", target="/v1/certificates/x"), 404, "no such endpoint", id="sub-path"),
        pytest.param(post("t", b"", method="GET"), 405, "accepts only POST", id="get"),
        pytest.param(post(None, b"{}"), 401, "has no 'Authorization: Bearer <token>' header", id="no-token"),
        pytest.param(
            HttpRequest("POST", CERTIFICATES_PATH, {"authorization": "Basic dTpw"}, b"", True),
            401,
            "must be 'Bearer <token>'",
            id="basic-auth",
        ),
        pytest.param(post("", b"{}"), 401, "must be 'Bearer <token>'", id="empty-token"),
        pytest.param(post("not-a-token", b"{}"), 401, "is not an Isthmus pod token", id="garbage-token"),
    ],
)
def test_requests_refused_before_signing(request_: HttpRequest, status: int, fragment: str) -> None:
    service = service_for(Mesh())
    response = service.handle(request_)
    assert response.status == status
    assert fragment in response.body["error"]
    assert service.stats.issued == 0 and service.stats.refused[status] == 1
    if status == 405:
        assert ("Allow", "POST") in response.headers
    if status == 401:
        assert response.headers[0][0] == "WWW-Authenticate"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        pytest.param(b"not json", 400, "request body: is not JSON", id="not-json"),
        pytest.param(b"\xff\xfe", 400, "request body: is not JSON", id="binary"),
        pytest.param(b'["csr"]', 400, "must be a JSON object", id="array"),
        pytest.param(b'{"csr": 5}', 400, "must be a JSON object", id="csr-number"),
        pytest.param(b'{"csr": "\\u00e9"}', 400, "non-ASCII", id="non-ascii"),
        pytest.param(b'{"csr": "garbage"}', 400, "is not PEM", id="garbage-csr"),
        pytest.param(csr_body(make_csr(sans=[uri(DB.uri)])), 403, f"asks for identity '{DB.uri}'", id="forged"),
    ],
)
def test_bodies_refused_after_the_token(body: bytes, status: int, fragment: str) -> None:
    mesh = Mesh()
    service = service_for(mesh)
    response = service.handle(post(mesh.token(WEB), body))
    assert (response.status, service.stats.issued) == (status, 0)
    assert fragment in response.body["error"]


def test_an_expired_token_is_401_even_with_a_good_csr() -> None:
    mesh = Mesh()
    token = mesh.token(WEB, lifetime=timedelta(minutes=1))
    mesh.clock.advance(timedelta(minutes=2))
    response = service_for(mesh).handle(post(token, csr_body(make_csr())))
    assert response.status == 401 and "expired at" in response.body["error"]


def test_an_expired_issuer_is_503() -> None:
    mesh = Mesh()
    mesh.clock.advance(timedelta(days=400))
    response = service_for(mesh).handle(post(mesh.token(WEB), csr_body(make_csr())))
    assert response.status == 503 and "rotate the cluster's issuer" in response.body["error"]


def test_a_verifier_for_another_trust_domain_is_a_misconfiguration() -> None:
    mesh = Mesh()
    service = IdentityService(
        mesh.issuer, mesh.bundle, HmacTokenVerifier(mesh.secret, "west", "other.org", mesh.clock), mesh.clock
    )
    response = service.handle(post(mesh.token(WEB), csr_body(make_csr())))
    assert response.status == 503 and "misconfigured" in response.body["error"]


def test_issuer_rotation_and_anchor_rotation() -> None:
    mesh, new = Mesh(), Mesh()
    service = service_for(mesh)
    service.use_issuer(create_issuer(mesh.anchor, "west", mesh.clock))  # issuer rotation: same anchor
    with pytest.raises(TrustMaterialError, match="not signed by any anchor"):
        service.use_issuer(new.issuer)  # a foreign issuer needs its anchor in the bundle first
    both = TrustBundle.of([mesh.anchor.certificate, new.anchor.certificate])
    service.use_issuer(new.issuer, both)  # anchor rotation, middle step: trust both, sign with the new
    response = service.handle(post(mesh.token(WEB), csr_body(make_csr())))
    assert response.status == 200
    chain = x509.load_pem_x509_certificates(response.body["certificate_chain"].encode())
    assert chain[1] == new.issuer.certificate
    assert response.body["trust_bundle"] == both.pem().decode()


def test_an_issuer_for_another_trust_domain_is_refused() -> None:
    mesh = Mesh()
    with pytest.raises(TrustMaterialError, match=r"may only sign for cluster\.local, not trust domain 'example\.org'"):
        IdentityService(mesh.issuer, mesh.bundle, mesh.verifier(), mesh.clock, trust_domain="example.org")
