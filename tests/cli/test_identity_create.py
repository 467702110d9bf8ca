"""`isthmus identity trust-anchor create` and `issuer create`: the files they write, and the bad input they refuse."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle, permitted_trust_domains
from isthmus.identity.clock import SystemClock
from tests.cli.helpers import one_error_line, read_cert, run, write_ca


def test_trust_anchor_create_writes_a_p256_root_with_a_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = tmp_path / "anchor.crt", tmp_path / "anchor.key"
    code, out, _ = run(
        capsys,
        "identity",
        "trust-anchor",
        "create",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--trust-domain",
        "example.org",
        "--lifetime-days",
        "30",
    )
    assert code == 0 and "trust domain example.org" in out
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.stat().st_mode) == 0o644
    anchor = read_cert(cert)
    assert anchor.issuer == anchor.subject and "O=example.org" in anchor.subject.rfc4514_string()
    assert anchor.not_valid_after_utc - anchor.not_valid_before_utc < timedelta(days=30, minutes=10)
    public = serialization.load_pem_private_key(key.read_bytes(), None).public_key()
    assert public == anchor.public_key()


def test_trust_anchor_create_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = tmp_path / "anchor.crt", tmp_path / "anchor.key"
    cert.write_text("precious\n")
    code, _, err = run(capsys, "identity", "trust-anchor", "create", "--cert", str(cert), "--key", str(key))
    assert code == 1
    assert (
        one_error_line(err)
        == f"isthmus: {cert}: already exists; refusing to overwrite it (remove it or choose another path)"
    )
    assert cert.read_text() == "precious\n" and not key.exists()


def test_issuer_create_is_signed_by_the_anchor_for_its_trust_domain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    anchor = create_trust_anchor(SystemClock(), trust_domain="example.org")
    a_cert, a_key = write_ca(anchor, tmp_path, "anchor")
    cert, key = tmp_path / "west.crt", tmp_path / "west.key"
    code, out, _ = run(
        capsys,
        "identity",
        "issuer",
        "create",
        "--trust-anchor",
        str(a_cert),
        "--trust-anchor-key",
        str(a_key),
        "--cluster",
        "west",
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--lifetime-days",
        "10",
    )
    assert code == 0, out
    assert f"isthmus up --trust-anchor {a_cert} --issuer west={cert} --issuer-key west={key}" in out
    issuer = read_cert(cert)
    assert TrustBundle.of([anchor.certificate]).signer_of(issuer) == anchor.certificate
    assert permitted_trust_domains(issuer) == ["example.org"]  # the anchor's, when not told otherwise
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert issuer.not_valid_after_utc - datetime.now(UTC) < timedelta(days=10)


def _bad_anchor_inputs(tmp: Path) -> dict[str, tuple[Path, Path]]:
    anchor = create_trust_anchor(SystemClock())
    a_cert, a_key = write_ca(anchor, tmp, "anchor")
    _, other_key = write_ca(create_trust_anchor(SystemClock()), tmp, "other")
    i_cert, i_key = write_ca(create_issuer(anchor, "west", SystemClock()), tmp, "issuer")
    garbage = tmp / "garbage.crt"
    garbage.write_bytes(b"hello, I am not a certificate\n")
    der = tmp / "anchor.der"
    der.write_bytes(anchor.certificate.public_bytes(serialization.Encoding.DER))
    return {
        "garbage": (garbage, a_key),
        "der": (der, a_key),
        "swapped": (a_key, a_cert),
        "other-key": (a_cert, other_key),
        "issuer-as-anchor": (i_cert, i_key),
        "missing": (tmp / "nowhere.crt", a_key),
    }


@pytest.mark.parametrize(
    ("case", "named", "problem"),
    [
        pytest.param("garbage", "garbage.crt", "is not PEM", id="garbage"),
        pytest.param("der", "anchor.der", "looks like DER", id="der"),
        pytest.param("swapped", "anchor.key", "are the two files swapped?", id="swapped"),
        pytest.param("other-key", "other.key", "does not belong to the certificate in", id="mismatched-key"),
        pytest.param("issuer-as-anchor", "issuer.crt", "is not self-signed", id="issuer-as-anchor"),
        pytest.param("missing", "nowhere.crt", "does not exist", id="missing"),
    ],
)
def test_issuer_create_names_the_bad_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, named: str, problem: str
) -> None:
    a_cert, a_key = _bad_anchor_inputs(tmp_path)[case]
    out_cert, out_key = tmp_path / "out.crt", tmp_path / "out.key"
    code, _, err = run(
        capsys,
        "identity",
        "issuer",
        "create",
        "--trust-anchor",
        str(a_cert),
        "--trust-anchor-key",
        str(a_key),
        "--cluster",
        "west",
        "--cert",
        str(out_cert),
        "--key",
        str(out_key),
    )
    line = one_error_line(err)
    assert code == 1 and line.startswith(f"isthmus: {tmp_path / named}: ") and problem in line
    assert not out_cert.exists() and not out_key.exists()
