"""Creating the trust anchor and issuers, and writing them to disk."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from isthmus.identity.anchors import ANCHOR_LIFETIME, ISSUER_LIFETIME, create_issuer, create_trust_anchor
from isthmus.identity.clock import ManualClock
from isthmus.identity.errors import SpiffeIdError, TrustMaterialError
from isthmus.identity.load import load_issuer, load_trust_anchor
from tests.identity.helpers import Mesh, ext, real_now


def test_anchor_is_a_long_lived_p256_root() -> None:
    clock = ManualClock(real_now())
    anchor = create_trust_anchor(clock)
    cert = anchor.certificate
    assert isinstance(anchor.key.curve, ec.SECP256R1)
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    usage = ext(cert, x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    assert anchor.not_after == clock.now() + ANCHOR_LIFETIME
    assert anchor.not_before <= clock.now()


def test_two_anchors_have_different_names() -> None:
    # Old and new anchor sit side by side during rotation; same names would confuse chain building.
    clock = ManualClock(real_now())
    assert create_trust_anchor(clock).certificate.subject != create_trust_anchor(clock).certificate.subject


def test_issuer_is_a_pathlen_0_ca_for_one_cluster_constrained_to_the_trust_domain() -> None:
    mesh = Mesh(trust_domain="example.org")
    cert = mesh.issuer.certificate
    cert.verify_directly_issued_by(mesh.anchor.certificate)
    constraints = ext(cert, x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert "Isthmus issuer west" in cert.subject.rfc4514_string()
    names = ext(cert, x509.NameConstraints)
    assert names.critical
    assert names.value.permitted_subtrees == [x509.UniformResourceIdentifier("example.org")]
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    ski = ext(mesh.anchor.certificate, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert mesh.issuer.not_after == mesh.clock.now() + ISSUER_LIFETIME


def test_issuer_never_outlives_the_anchor() -> None:
    clock = ManualClock(real_now())
    anchor = create_trust_anchor(clock, lifetime=timedelta(days=30))
    issuer = create_issuer(anchor, "west", clock, lifetime=timedelta(days=365))
    assert issuer.not_after == anchor.not_after


def test_an_expired_anchor_cannot_create_issuers() -> None:
    clock = ManualClock(real_now())
    anchor = create_trust_anchor(clock, lifetime=timedelta(days=1))
    clock.advance(timedelta(days=2))
    with pytest.raises(TrustMaterialError, match="trust anchor expired"):
        create_issuer(anchor, "west", clock)


@pytest.mark.parametrize(
    ("cluster", "trust_domain", "error", "fragment"),
    [
        pytest.param("West", "cluster.local", TrustMaterialError, "cluster name 'West'", id="cluster-uppercase"),
        pytest.param("a/b", "cluster.local", TrustMaterialError, "cluster name 'a/b'", id="cluster-slash"),
        pytest.param("west", "Bad Domain", SpiffeIdError, "trust domain", id="trust-domain"),
    ],
)
def test_issuer_refuses_bad_names(cluster: str, trust_domain: str, error: type[Exception], fragment: str) -> None:
    mesh = Mesh()
    with pytest.raises(error, match=fragment):
        create_issuer(mesh.anchor, cluster, mesh.clock, trust_domain=trust_domain)


def test_written_key_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    mesh = Mesh()
    old = os.umask(0)
    try:
        mesh.anchor.write(tmp_path / "anchor.crt", tmp_path / "anchor.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "anchor.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "anchor.crt").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anchor.crt", "anchor.key"]  # no temporaries left


def test_written_material_loads_back(tmp_path: Path) -> None:
    mesh = Mesh()
    mesh.anchor.write(tmp_path / "anchor.crt", tmp_path / "anchor.key")
    mesh.issuer.write(tmp_path / "issuer.crt", tmp_path / "issuer.key")
    anchor = load_trust_anchor(tmp_path / "anchor.crt", tmp_path / "anchor.key", mesh.clock)
    issuer = load_issuer(tmp_path / "issuer.crt", tmp_path / "issuer.key", mesh.bundle, mesh.clock)
    assert anchor.certificate == mesh.anchor.certificate
    assert anchor.key.private_numbers() == mesh.anchor.key.private_numbers()
    assert issuer.certificate == mesh.issuer.certificate
    assert issuer.source == str(tmp_path / "issuer.crt")


def test_writing_never_overwrites_unless_asked(tmp_path: Path) -> None:
    first, second = Mesh(), Mesh()
    first.anchor.write(tmp_path / "a.crt", tmp_path / "a.key")
    with pytest.raises(TrustMaterialError, match="already exists; refusing to overwrite") as err:
        second.anchor.write(tmp_path / "a.crt", tmp_path / "a.key")
    assert str(tmp_path / "a.key") in str(err.value)
    assert (
        load_trust_anchor(tmp_path / "a.crt", tmp_path / "a.key", first.clock).certificate == first.anchor.certificate
    )
    second.anchor.write(tmp_path / "a.crt", tmp_path / "a.key", overwrite=True)
    assert (
        load_trust_anchor(tmp_path / "a.crt", tmp_path / "a.key", first.clock).certificate == second.anchor.certificate
    )
    assert stat.S_IMODE((tmp_path / "a.key").stat().st_mode) == 0o600


def test_writing_into_a_missing_directory_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(TrustMaterialError, match="cannot create the file") as err:
        Mesh().anchor.write(tmp_path / "nope" / "a.crt", tmp_path / "nope" / "a.key")
    assert str(tmp_path / "nope" / "a.key") in str(err.value)
