"""The signing rules: what gets signed, what the certificate says, and every refusal's reason."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import ssl
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.identity.clock import ManualClock
from isthmus.identity.csr import build_csr, generate_key, private_key_pem
from isthmus.identity.errors import CsrRejected, IdentityMismatch, TrustMaterialError
from isthmus.identity.signing import SigningPolicy, issue_certificate, sign_csr
from isthmus.identity.spiffe import workload_id
from tests.identity.helpers import DB, WEB, Mesh, ext, make_csr, openssl_mtls, tampered, uri

MESH = Mesh()  # signing never changes the material; one set for the module keeps the tests fast
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_good_csr_gets_a_workload_certificate() -> None:
    key = generate_key()
    signed = sign_csr(MESH.issuer, build_csr(key, WEB.uri), WEB, MESH.clock)
    leaf = signed.leaf
    assert leaf.public_key() == key.public_key()
    san = ext(leaf, x509.SubjectAlternativeName)
    assert list(san.value) == [x509.UniformResourceIdentifier(WEB.uri)]
    assert san.critical  # the subject is empty, so RFC 5280 wants the SAN critical
    assert leaf.subject == x509.Name([])
    constraints = ext(leaf, x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    usage = ext(leaf, x509.KeyUsage).value
    assert usage.digital_signature and usage.key_agreement and not usage.key_cert_sign
    eku = ext(leaf, x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value
    issuer_ski = ext(MESH.issuer.certificate, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.digest
    assert ext(leaf, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    leaf.verify_directly_issued_by(MESH.issuer.certificate)
    assert signed.chain_pem().count(b"BEGIN CERTIFICATE") == 2
    assert MESH.bundle.verify_workload_chain([leaf, signed.issuer], MESH.clock) == WEB


def test_validity_is_backdated_and_lasts_the_policy_lifetime() -> None:
    now = MESH.clock.now()
    signed = sign_csr(MESH.issuer, make_csr(), WEB, MESH.clock)
    assert signed.not_before == now - timedelta(minutes=1)
    assert signed.expires_at == now + timedelta(hours=24)
    short = sign_csr(MESH.issuer, make_csr(), WEB, MESH.clock, SigningPolicy(lifetime=timedelta(minutes=5)))
    assert short.expires_at == now + timedelta(minutes=5)


def test_serials_are_random_and_distinct() -> None:
    serials = {sign_csr(MESH.issuer, make_csr(), WEB, MESH.clock).serial for _ in range(20)}
    assert len(serials) == 20
    assert all(s.bit_length() > 100 for s in serials)


def test_the_csr_subject_and_extensions_do_not_reach_the_certificate() -> None:
    signed = sign_csr(MESH.issuer, make_csr(common_name="admin"), WEB, MESH.clock)
    assert signed.leaf.subject == x509.Name([])


def test_lifetime_is_capped_by_the_issuer() -> None:
    mesh = Mesh()
    clock = mesh.clock
    clock.advance(timedelta(days=365) - timedelta(hours=2))  # issuer has two hours left
    signed = sign_csr(mesh.issuer, make_csr(), WEB, clock)
    assert signed.expires_at == mesh.issuer.not_after
    assert signed.expires_at - clock.now() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("move", "fragment"),
    [
        pytest.param(timedelta(days=366), "issuer expired on", id="expired-issuer"),
        pytest.param(-timedelta(hours=1), "issuer is not valid before", id="issuer-not-yet-valid"),
    ],
)
def test_an_issuer_outside_its_validity_signs_nothing(move: timedelta, fragment: str) -> None:
    mesh = Mesh()
    mesh.clock.advance(move)
    with pytest.raises(TrustMaterialError, match=fragment):
        sign_csr(mesh.issuer, make_csr(), WEB, mesh.clock)


GOOD = make_csr()
GOOD_DER = x509.load_pem_x509_csr(GOOD).public_bytes(serialization.Encoding.DER)

BAD_CSRS: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty", lambda: b"", "is not PEM"),
    ("garbage", lambda: b"\x00\xff not a csr at all", "is not PEM"),
    ("der", lambda: GOOD_DER, "is not PEM"),
    ("certificate", lambda: MESH.issuer.certificate_pem(), "is not PEM"),
    ("private-key", lambda: private_key_pem(generate_key()), "holds a private key"),
    (
        "bad-base64",
        lambda: b"-----BEGIN CERTIFICATE REQUEST-----\n!!!\n-----END CERTIFICATE REQUEST-----\n",
        "is not a valid PEM CSR",
    ),
    ("truncated", lambda: GOOD[:200] + b"\n-----END CERTIFICATE REQUEST-----\n", "is not a valid PEM CSR"),
    ("huge", lambda: GOOD + b"x" * 20000, "more than the 16384 a CSR may have"),
    ("rsa", lambda: make_csr(RSA_KEY), "key of type RSA 2048-bit; workload keys must be EC P-256"),
    ("p384", lambda: make_csr(ec.generate_private_key(ec.SECP384R1())), "key of type EC P-384"),
    ("ed25519", lambda: make_csr(ed25519.Ed25519PrivateKey.generate(), algorithm=None), "key of type Ed25519"),
    ("bad-signature", lambda: tampered(GOOD, b"/sa/web", b"/sa/wex"), "signature does not verify"),
    ("sha224", lambda: make_csr(algorithm=hashes.SHA224()), "hash sha224; sign it with SHA-256"),
    ("ca", lambda: make_csr(ca=True), "asks to be a CA"),
    ("key-cert-sign", lambda: make_csr(key_cert_sign=True), "CA key usages"),
    ("no-san", lambda: make_csr(sans=[]), "has no subjectAltName"),
    ("dns-san", lambda: make_csr(sans=[uri(WEB.uri), x509.DNSName("web.default.svc")]), "(DNS:web.default.svc)"),
    ("only-dns", lambda: make_csr(sans=[x509.DNSName("web")]), "SANs other than the workload's URI"),
    (
        "ip-san",
        lambda: make_csr(sans=[uri(WEB.uri), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]),
        "IP:10.0.0.1",
    ),
    ("twice", lambda: make_csr(sans=[uri(WEB.uri), uri(WEB.uri)]), "has 2 URI SANs"),
]


@pytest.mark.parametrize(("make", "fragment"), [pytest.param(m, f, id=i) for i, m, f in BAD_CSRS])
def test_bad_csrs_are_rejected_with_the_reason(make: Callable[[], bytes], fragment: str) -> None:
    with pytest.raises(CsrRejected) as err:
        sign_csr(MESH.issuer, make(), WEB, MESH.clock)
    assert fragment in str(err.value)
    assert str(err.value).startswith("certificate signing request: ")


FORGED = [
    ("other-sa", [uri(DB.uri)], DB.uri),
    ("other-trust-domain", [uri(workload_id("default", "web", "evil.org").uri)], "spiffe://evil.org/ns/default/sa/web"),
    ("own-plus-other", [uri(WEB.uri), uri(DB.uri)], DB.uri),
    ("not-spiffe", [uri("https://web.default.svc")], "https://web.default.svc"),
    ("forged-plus-dns", [uri(DB.uri), x509.DNSName("db")], DB.uri),
]


@pytest.mark.parametrize(("sans", "requested"), [pytest.param(s, r, id=i) for i, s, r in FORGED])
def test_a_forged_san_is_refused_naming_both_identities(sans: list[x509.GeneralName], requested: str) -> None:
    with pytest.raises(IdentityMismatch) as err:
        sign_csr(MESH.issuer, make_csr(sans=sans), WEB, MESH.clock)
    assert err.value.requested == requested
    assert err.value.proven == WEB.uri
    assert requested in str(err.value) and WEB.uri in str(err.value)


def test_openssl_accepts_issued_certificates_for_mutual_tls(tmp_path: Path) -> None:
    web_key, db_key = generate_key(), generate_key()
    web = sign_csr(MESH.issuer, build_csr(web_key, WEB.uri), WEB, MESH.clock)
    db = sign_csr(MESH.issuer, build_csr(db_key, DB.uri), DB, MESH.clock)
    seen_by_server, seen_by_client = openssl_mtls(
        tmp_path, (db.chain_pem(), db_key), (web.chain_pem(), web_key), MESH.bundle.pem()
    )
    assert (seen_by_server, seen_by_client) == ([WEB.uri], [DB.uri])


def test_openssl_refuses_a_certificate_from_another_anchor(tmp_path: Path) -> None:
    other = Mesh()
    web_key, db_key = generate_key(), generate_key()
    web = sign_csr(other.issuer, build_csr(web_key, WEB.uri), WEB, other.clock)
    db = sign_csr(MESH.issuer, build_csr(db_key, DB.uri), DB, MESH.clock)
    with pytest.raises(ssl.SSLError):
        openssl_mtls(tmp_path, (db.chain_pem(), db_key), (web.chain_pem(), web_key), MESH.bundle.pem())


def test_openssl_enforces_the_issuers_trust_domain(tmp_path: Path) -> None:
    # The name constraint at work: this issuer can sign for cluster.local only.
    evil = workload_id("default", "web", "evil.org")
    key, db_key = generate_key(), generate_key()
    forged = issue_certificate(MESH.issuer, key.public_key(), evil, MESH.clock)
    db = sign_csr(MESH.issuer, build_csr(db_key, DB.uri), DB, MESH.clock)
    with pytest.raises(ssl.SSLError, match="permitted subtree violation"):
        openssl_mtls(tmp_path, (db.chain_pem(), db_key), (forged.chain_pem(), key), MESH.bundle.pem())


def test_verify_workload_chain_rejects_expired_leaves() -> None:
    clock = ManualClock(MESH.clock.now())
    signed = sign_csr(MESH.issuer, make_csr(), WEB, clock, SigningPolicy(lifetime=timedelta(minutes=5)))
    clock.advance(timedelta(minutes=6))
    with pytest.raises(TrustMaterialError, match="workload certificate: expired on"):
        MESH.bundle.verify_workload_chain([signed.leaf, signed.issuer], clock)


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE REQUEST-----\n" + body + b"-----END CERTIFICATE REQUEST-----\n"


def _mutate(data: bytes, position: int, value: int) -> bytes:
    position %= len(data)
    return data[:position] + bytes([value]) + data[position + 1 :]


csr_inputs = st.one_of(
    st.binary(max_size=4096),
    st.binary(max_size=2048).map(_pem),
    st.tuples(st.integers(0, len(GOOD_DER) - 1), st.integers(0, 255)).map(lambda m: _pem(_mutate(GOOD_DER, *m))),
    st.integers(1, len(GOOD_DER)).map(lambda n: _pem(GOOD_DER[:n])),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csr_inputs)
def test_any_bytes_as_a_csr_are_signed_or_refused_never_crash(data: bytes) -> None:
    with contextlib.suppress(CsrRejected, IdentityMismatch):
        sign_csr(MESH.issuer, data, WEB, MESH.clock)
