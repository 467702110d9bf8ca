"""A running identity server follows its issuer and bundle files: rotation without a restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.files import write_file
from isthmus.identity.reload import TrustFiles, TrustReloader
from isthmus.identity.server import IdentityServer
from isthmus.identity.service import IdentityService
from tests.identity.helpers import Mesh


@pytest.fixture
def mesh() -> Mesh:
    return Mesh()


def _files(tmp_path: Path, mesh: Mesh) -> TrustFiles:
    files = TrustFiles(tmp_path / "issuer.crt", tmp_path / "issuer.key", tmp_path / "bundle.pem")
    mesh.issuer.write(files.issuer_cert, files.issuer_key)
    write_file(files.bundle, mesh.bundle.pem(), private=False)
    return files


def _reloader(tmp_path: Path, mesh: Mesh) -> TrustReloader:
    server = IdentityServer(IdentityService(mesh.issuer, mesh.bundle, mesh.verifier(), mesh.clock))
    return TrustReloader(server, _files(tmp_path, mesh), mesh.trust_domain, mesh.clock)


def test_unchanged_files_change_nothing(tmp_path: Path, mesh: Mesh) -> None:
    reloader = _reloader(tmp_path, mesh)
    own = reloader.server.certificate.serial
    assert reloader.check() is False  # the first look compares contents: the same as served
    assert reloader.check() is False
    assert reloader.server.certificate.serial == own and reloader.error is None


def test_a_new_issuer_is_signed_with_at_once_and_the_server_renews_its_own_certificate(
    tmp_path: Path, mesh: Mesh
) -> None:
    reloader = _reloader(tmp_path, mesh)
    reloader.check()
    own = reloader.server.certificate.serial
    new = create_issuer(mesh.anchor, mesh.cluster, mesh.clock)
    new.write(reloader.files.issuer_cert, reloader.files.issuer_key, overwrite=True)
    assert reloader.check() is True
    assert reloader.server.service.issuer.certificate == new.certificate
    # Its own certificate comes from the new issuer too, so it stays trusted once the old anchor goes.
    assert reloader.server.certificate.serial != own and reloader.server.certificate.issuer == new.certificate
    served = reloader.served()
    assert served["issuer"]["serial"] == f"{new.certificate.serial_number:x}" and served["error"] is None


def test_anchor_rotation_bundle_then_issuer_from_the_new_anchor(tmp_path: Path, mesh: Mesh) -> None:
    reloader = _reloader(tmp_path, mesh)
    new_anchor = create_trust_anchor(mesh.clock)
    both = mesh.bundle.with_anchor(new_anchor.certificate)
    write_file(reloader.files.bundle, both.pem(), private=False, overwrite=True)
    own = reloader.server.certificate.serial
    assert reloader.check() is True
    assert reloader.server.service.bundle.anchors == both.anchors
    assert reloader.server.certificate.serial == own  # same issuer: its own certificate stays
    assert len(reloader.served()["bundle"]) == 2

    new_issuer = create_issuer(new_anchor, mesh.cluster, mesh.clock)
    new_issuer.write(reloader.files.issuer_cert, reloader.files.issuer_key, overwrite=True)
    assert reloader.check() is True
    assert reloader.server.service.issuer.certificate == new_issuer.certificate


def test_files_that_do_not_fit_together_leave_the_server_as_it_was(
    tmp_path: Path, mesh: Mesh, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = _reloader(tmp_path, mesh)
    reloader.check()
    # A certificate whose key is not (yet) there: the server must keep signing with the old pair.
    foreign = create_issuer(mesh.anchor, mesh.cluster, mesh.clock)
    write_file(reloader.files.issuer_cert, foreign.certificate_pem(), private=False, overwrite=True)
    assert reloader.check() is False
    assert reloader.server.service.issuer.certificate == mesh.issuer.certificate
    assert reloader.error is not None and "does not belong to the certificate" in reloader.error
    assert reloader.served()["error"] == reloader.error
    assert reloader.check() is False
    assert len([r for r in caplog.records if "keeping the current issuer" in r.message]) == 1  # once per change
    # An issuer from an anchor the bundle does not hold is refused the same way.
    stranger = create_issuer(create_trust_anchor(mesh.clock), mesh.cluster, mesh.clock)
    stranger.write(reloader.files.issuer_cert, reloader.files.issuer_key, overwrite=True)
    assert reloader.check() is False and "is not signed by the trust anchor" in str(reloader.error)
    # Once the files fit again, the server follows them and the error clears.
    fixed = create_issuer(mesh.anchor, mesh.cluster, mesh.clock)
    fixed.write(reloader.files.issuer_cert, reloader.files.issuer_key, overwrite=True)
    assert reloader.check() is True and reloader.error is None
    assert reloader.server.service.issuer.certificate == fixed.certificate


def test_a_forced_check_reads_the_files_even_when_their_stamp_did_not_change(tmp_path: Path, mesh: Mesh) -> None:
    reloader = _reloader(tmp_path, mesh)
    reloader.check()
    new = create_issuer(mesh.anchor, mesh.cluster, mesh.clock)
    stat = os.stat(reloader.files.issuer_cert)
    # Written in place (not renamed) with the old times: the stamp may look unchanged; `force` reads anyway.
    reloader.files.issuer_key.write_bytes(new.key_pem())
    reloader.files.issuer_cert.write_bytes(new.certificate_pem())
    os.utime(reloader.files.issuer_cert, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert reloader.check(force=True) is True
    assert reloader.server.service.issuer.certificate == new.certificate
