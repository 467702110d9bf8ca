"""Loading anchors, issuers and bundles: every unusable file gets an error naming it and the problem."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from isthmus.identity.anchors import CertificateAuthority, create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle
from isthmus.identity.clock import ManualClock
from isthmus.identity.csr import generate_key, private_key_pem
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.load import load_issuer, load_trust_anchor, load_trust_bundle, parse_trust_bundle
from isthmus.identity.signing import issue_certificate
from tests.identity.helpers import WEB, Mesh


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of good and bad trust-material files, named for what they are."""
    d = tmp_path_factory.mktemp("material")
    mesh = Mesh()
    mesh.anchor.write(d / "anchor.crt", d / "anchor.key")
    mesh.issuer.write(d / "issuer.crt", d / "issuer.key")
    (d / "bundle.pem").write_bytes(mesh.bundle.pem())
    (d / "empty").write_bytes(b"")
    (d / "garbage").write_bytes(b"hello, this is not a certificate\n")
    (d / "anchor.der").write_bytes(mesh.anchor.certificate.public_bytes(serialization.Encoding.DER))
    (d / "malformed.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    (d / "two.crt").write_bytes(mesh.anchor.certificate_pem() + mesh.issuer.certificate_pem())
    (d / "rsa.key").write_bytes(_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    (d / "p384.key").write_bytes(_key_pem(ec.generate_private_key(ec.SECP384R1())))
    (d / "encrypted.key").write_bytes(_key_pem(mesh.anchor.key, b"secret"))
    (d / "other.key").write_bytes(private_key_pem(generate_key()))
    (d / "dir").mkdir()
    leaf_key = generate_key()
    (d / "leaf.crt").write_bytes(issue_certificate(mesh.issuer, leaf_key.public_key(), WEB, mesh.clock).chain_pem())
    (d / "leaf.key").write_bytes(private_key_pem(leaf_key))
    stranger = Mesh()
    stranger.issuer.write(d / "stranger-issuer.crt", d / "stranger-issuer.key")
    past = ManualClock(mesh.clock.now() - timedelta(days=400))
    _write(create_trust_anchor(past, lifetime=timedelta(days=10)), d, "expired-anchor")
    future = ManualClock(mesh.clock.now() + timedelta(days=30))
    _write(create_trust_anchor(future), d, "future-anchor")
    _write(create_issuer(mesh.anchor, "west", mesh.clock, lifetime=timedelta(hours=1)), d, "short-issuer")
    _write(create_issuer(mesh.anchor, "west", mesh.clock, trust_domain="other.org"), d, "other-domain-issuer")
    (d / "expired-bundle.pem").write_bytes(mesh.anchor.certificate_pem() + (d / "expired-anchor.crt").read_bytes())
    return d


def _write(ca: CertificateAuthority, d: Path, name: str) -> None:
    ca.write(d / f"{name}.crt", d / f"{name}.key")


ANCHOR_CASES = [
    ("missing.crt", "anchor.key", "missing.crt", "certificate file does not exist"),
    ("dir", "anchor.key", "dir", "is a directory"),
    ("empty", "anchor.key", "empty", "is empty"),
    ("garbage", "anchor.key", "garbage", "is not PEM: expected '-----BEGIN CERTIFICATE-----'"),
    ("anchor.der", "anchor.key", "anchor.der", "looks like DER"),
    ("malformed.crt", "anchor.key", "malformed.crt", "malformed PEM certificate"),
    ("anchor.key", "anchor.crt", "anchor.key", "holds a private key, not a certificate: are the two files swapped"),
    ("two.crt", "anchor.key", "two.crt", "holds 2 certificates"),
    ("anchor.crt", "garbage", "garbage", "is not a PEM private key"),
    ("anchor.crt", "issuer.crt", "issuer.crt", "holds a certificate, not a private key"),
    ("anchor.crt", "rsa.key", "rsa.key", "key of type RSA 2048-bit; Isthmus CAs use EC P-256"),
    ("anchor.crt", "p384.key", "p384.key", "key of type EC P-384"),
    ("anchor.crt", "encrypted.key", "encrypted.key", "is encrypted"),
    ("anchor.crt", "other.key", "other.key", "does not belong to the certificate in"),
    ("leaf.crt", "leaf.key", "leaf.crt", "holds 2 certificates"),
    ("expired-anchor.crt", "expired-anchor.key", "expired-anchor.crt", "trust anchor expired on"),
    ("future-anchor.crt", "future-anchor.key", "future-anchor.crt", "is not valid before"),
    ("issuer.crt", "issuer.key", "issuer.crt", "is not self-signed"),
]


@pytest.mark.parametrize(
    ("cert", "key", "about", "problem"), [pytest.param(*c, id=f"{c[0]}+{c[1]}") for c in ANCHOR_CASES]
)
def test_bad_anchor_files(files: Path, cert: str, key: str, about: str, problem: str) -> None:
    with pytest.raises(TrustMaterialError) as err:
        load_trust_anchor(files / cert, files / key, Mesh().clock)
    assert str(err.value).startswith(f"{files / about}: ")
    assert problem in str(err.value)


def test_a_workload_certificate_is_not_a_ca(files: Path, tmp_path: Path) -> None:
    leaf_only = tmp_path / "leaf-only.crt"
    leaf_only.write_bytes(
        (files / "leaf.crt").read_bytes().split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    )
    with pytest.raises(TrustMaterialError, match="is not a CA certificate") as err:
        load_trust_anchor(leaf_only, files / "leaf.key", Mesh().clock)
    assert str(leaf_only) in str(err.value)


ISSUER_CASES = [
    ("stranger-issuer.crt", "stranger-issuer.key", "stranger-issuer.crt", "is not signed by the trust anchor in"),
    ("anchor.crt", "anchor.key", "anchor.crt", "is self-signed: this is a trust anchor, not an issuer"),
    ("issuer.crt", "anchor.key", "anchor.key", "does not belong to the certificate in"),
    (
        "other-domain-issuer.crt",
        "other-domain-issuer.key",
        "other-domain-issuer.crt",
        "may only issue for trust domain(s) other.org",
    ),
]


@pytest.mark.parametrize(("cert", "key", "about", "problem"), [pytest.param(*c, id=c[0]) for c in ISSUER_CASES])
def test_bad_issuer_files(files: Path, cert: str, key: str, about: str, problem: str) -> None:
    mesh = Mesh()
    bundle = load_trust_bundle(files / "bundle.pem", mesh.clock)
    with pytest.raises(TrustMaterialError) as err:
        load_issuer(files / cert, files / key, bundle, mesh.clock, trust_domain="cluster.local")
    assert str(err.value).startswith(f"{files / about}: ")
    assert problem in str(err.value)
    if "not signed" in problem:
        assert str(files / "bundle.pem") in str(err.value)  # names the bundle it checked against


def test_an_expired_issuer_is_refused(files: Path) -> None:
    clock = Mesh().clock
    bundle = load_trust_bundle(files / "bundle.pem", clock)
    load_issuer(files / "short-issuer.crt", files / "short-issuer.key", bundle, clock)
    clock.advance(timedelta(hours=2))
    with pytest.raises(TrustMaterialError, match="issuer expired on") as err:
        load_issuer(files / "short-issuer.crt", files / "short-issuer.key", bundle, clock)
    assert str(files / "short-issuer.crt") in str(err.value)


BUNDLE_CASES = [
    ("empty", "empty", "is empty"),
    ("garbage", "garbage", "is not PEM"),
    ("issuer.crt", "issuer.crt", "is not self-signed"),
    ("leaf.crt", "leaf.crt (certificate 1", "is not a CA certificate"),
    ("expired-bundle.pem", "expired-bundle.pem (certificate 2", "expired on"),
]


@pytest.mark.parametrize(("name", "about", "problem"), [pytest.param(*c, id=c[0]) for c in BUNDLE_CASES])
def test_bad_bundle_files(files: Path, name: str, about: str, problem: str) -> None:
    with pytest.raises(TrustMaterialError) as err:
        load_trust_bundle(files / name, Mesh().clock)
    assert str(err.value).startswith(f"{files / about}")
    assert problem in str(err.value)


def test_bundle_with_two_anchors_for_rotation() -> None:
    old, new = Mesh(), Mesh()
    bundle = parse_trust_bundle(old.bundle.pem() + new.bundle.pem() + old.bundle.pem(), "roots.pem", old.clock)
    assert bundle.anchors == (old.anchor.certificate, new.anchor.certificate)  # duplicates dropped, order kept
    assert bundle.signer_of(old.issuer.certificate) == old.anchor.certificate
    assert bundle.signer_of(new.issuer.certificate) == new.anchor.certificate
    assert bundle.without_anchor(old.anchor.certificate).anchors == (new.anchor.certificate,)
    assert old.bundle.with_anchor(new.anchor.certificate) == bundle.__class__(bundle.anchors, "trust bundle")
    with pytest.raises(TrustMaterialError, match="holds no trust anchor"):
        TrustBundle(())
