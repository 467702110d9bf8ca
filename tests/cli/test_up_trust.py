"""The trust flags of `isthmus up`: what it checks and stores before anything starts.

The launcher is replaced by a fake that records the call, so no mesh runs here.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.clock import SystemClock
from isthmus.platform.local import launcher
from isthmus.platform.local.paths import StatePaths
from tests.cli.helpers import FakeLauncher, one_error_line, read_cert, run, write_ca


@pytest.fixture
def fake_launcher(monkeypatch: pytest.MonkeyPatch) -> FakeLauncher:
    fake = FakeLauncher()
    monkeypatch.setattr(launcher, "start", fake.start)
    return fake


@dataclass
class Material:
    anchor: Path
    anchor_key: Path
    west: tuple[Path, Path]
    east: tuple[Path, Path]
    foreign: tuple[Path, Path]
    """An issuer of another anchor."""


@pytest.fixture
def material(tmp_path: Path) -> Material:
    clock = SystemClock()
    anchor = create_trust_anchor(clock)
    other = create_trust_anchor(clock)
    return Material(
        *write_ca(anchor, tmp_path, "anchor"),
        west=write_ca(create_issuer(anchor, "west", clock), tmp_path, "west"),
        east=write_ca(create_issuer(anchor, "east", clock), tmp_path, "east"),
        foreign=write_ca(create_issuer(other, "west", clock), tmp_path, "foreign"),
    )


def _up(capsys: pytest.CaptureFixture[str], home: Path, *flags: str) -> tuple[int, str, str]:
    return run(capsys, "--home", str(home), "up", *flags)


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        pytest.param(
            lambda m: ["--trust-anchor", str(m.west[0].with_name("nothing.crt"))],
            "nothing.crt: trust anchor certificate file does not exist",
            id="missing-anchor",
        ),
        pytest.param(
            lambda m: ["--trust-anchor", str(m.anchor_key)],
            "anchor.key: holds a private key, not a certificate",
            id="key-as-anchor",
        ),
        pytest.param(
            lambda m: ["--trust-anchor", str(m.west[0])], "west.crt: is not self-signed", id="issuer-as-anchor"
        ),
        pytest.param(
            lambda m: ["--trust-anchor", str(m.anchor)],
            "cluster local: has no issuer, and isthmus cannot create one",
            id="anchor-without-key-or-issuer",
        ),
        pytest.param(
            lambda m: ["--trust-anchor-key", str(m.anchor_key)],
            "pass its certificate with --trust-anchor",
            id="key-without-anchor",
        ),
        pytest.param(
            lambda m: ["--issuer", str(m.west[0]), "--issuer-key", str(m.west[1])],
            "this mesh has no trust anchor yet",
            id="issuer-without-anchor",
        ),
        pytest.param(
            lambda m: [
                "--trust-anchor",
                str(m.anchor),
                "--issuer",
                str(m.foreign[0]),
                "--issuer-key",
                str(m.foreign[1]),
            ],
            "foreign.crt: is not signed by the trust anchor in",
            id="issuer-of-another-anchor",
        ),
        pytest.param(
            lambda m: ["--trust-anchor", str(m.anchor), "--issuer", str(m.west[0]), "--issuer-key", str(m.east[1])],
            "east.key: does not belong to the certificate in",
            id="issuer-with-wrong-key",
        ),
        pytest.param(
            lambda m: ["--trust-anchor", str(m.anchor), "--issuer", f"local={m.west[0]}"],
            "--issuer for cluster local needs --issuer-key local=FILE too",
            id="issuer-without-key",
        ),
        pytest.param(
            lambda m: ["--clusters", "east,west", "--trust-anchor", str(m.anchor), "--issuer", str(m.west[0])],
            "say which cluster it is for",
            id="bare-issuer-with-two-clusters",
        ),
        pytest.param(
            lambda m: [
                "--trust-anchor",
                str(m.anchor),
                "--issuer",
                f"mars={m.west[0]}",
                "--issuer-key",
                f"mars={m.west[1]}",
            ],
            "--issuer names cluster mars, which this `up` does not start",
            id="issuer-for-another-cluster",
        ),
        pytest.param(
            lambda m: [
                "--clusters",
                "east,west",
                "--trust-anchor",
                str(m.anchor),
                "--issuer",
                f"east={m.west[0]}",
                "--issuer-key",
                f"east={m.west[1]}",
                "--issuer",
                f"west={m.west[0]}",
                "--issuer-key",
                f"west={m.west[1]}",
            ],
            "clusters never share an issuer",
            id="shared-issuer",
        ),
    ],
)
def test_up_refuses_bad_trust_flags_before_starting_anything(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fake_launcher: FakeLauncher,
    material: Material,
    flags: Callable[[Material], list[str]],
    problem: str,
) -> None:
    home = tmp_path / "home"
    code, _, err = _up(capsys, home, *flags(material))
    assert code == 1 and problem in one_error_line(err)
    assert fake_launcher.calls == []
    paths = StatePaths(home)
    assert not paths.anchor_cert.exists() and not paths.anchor_key.exists()
    assert not list(home.glob("clusters/*/identity/issuer.*"))


def test_up_with_the_anchor_and_its_key_stores_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_launcher: FakeLauncher, material: Material
) -> None:
    paths = StatePaths(tmp_path / "home")
    code, _, err = _up(
        capsys,
        paths.home,
        "--clusters",
        "east,west",
        "--trust-anchor",
        str(material.anchor),
        "--trust-anchor-key",
        str(material.anchor_key),
    )
    assert code == 0, err
    assert fake_launcher.calls == [["east", "west"]]
    assert read_cert(paths.anchor_cert) == read_cert(material.anchor)
    assert stat.S_IMODE(paths.anchor_key.stat().st_mode) == 0o600
    # The daemon makes the issuers from the stored anchor key.
    assert not paths.issuer_cert("east").exists()


def test_up_with_the_anchor_certificate_and_issuers_keeps_the_anchor_key_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_launcher: FakeLauncher, material: Material
) -> None:
    paths = StatePaths(tmp_path / "home")
    code, _, err = _up(
        capsys,
        paths.home,
        "--clusters",
        "east,west",
        "--trust-anchor",
        str(material.anchor),
        "--issuer",
        f"east={material.east[0]}",
        "--issuer-key",
        f"east={material.east[1]}",
        "--issuer",
        f"west={material.west[0]}",
        "--issuer-key",
        f"west={material.west[1]}",
    )
    assert code == 0, err
    assert read_cert(paths.anchor_cert) == read_cert(material.anchor) and not paths.anchor_key.exists()
    assert read_cert(paths.issuer_cert("east")) == read_cert(material.east[0])
    assert read_cert(paths.issuer_cert("west")) == read_cert(material.west[0])
    assert stat.S_IMODE(paths.issuer_key("west").stat().st_mode) == 0o600

    # Again with the same material: nothing to change. A new cluster without an issuer: refused.
    paths.db.touch()
    assert _up(capsys, paths.home, "--trust-anchor", str(material.anchor))[0] == 0
    code, _, err = _up(capsys, paths.home, "--clusters", "north")
    assert code == 1 and "cluster north: has no issuer" in err
    # Another cluster's issuer again, for a new cluster: refused.
    code, _, err = _up(
        capsys,
        paths.home,
        "--clusters",
        "north",
        "--issuer",
        f"north={material.west[0]}",
        "--issuer-key",
        f"north={material.west[1]}",
    )
    assert code == 1 and "is (or shares its key with) the issuer of cluster west" in err
    assert fake_launcher.calls == [["east", "west"], []]


def test_up_refuses_a_different_anchor_than_the_mesh_has(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_launcher: FakeLauncher, material: Material
) -> None:
    paths = StatePaths(tmp_path / "home")
    assert (
        _up(capsys, paths.home, "--trust-anchor", str(material.anchor), "--trust-anchor-key", str(material.anchor_key))[
            0
        ]
        == 0
    )
    stored = paths.anchor_cert.read_bytes()
    other_cert, other_key = write_ca(create_trust_anchor(SystemClock()), tmp_path, "new-anchor")
    code, _, err = _up(capsys, paths.home, "--trust-anchor", str(other_cert), "--trust-anchor-key", str(other_key))
    line = one_error_line(err)
    assert code == 1 and line.startswith(f"isthmus: {other_cert}: differs from the trust anchor this mesh already uses")
    assert "isthmus identity rotate anchor begin" in line and "isthmus down --purge" in line
    assert paths.anchor_cert.read_bytes() == stored
    assert len(fake_launcher.calls) == 1


def test_up_refuses_a_different_issuer_for_a_cluster_that_has_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_launcher: FakeLauncher, material: Material
) -> None:
    paths = StatePaths(tmp_path / "home")
    flags = [
        "--trust-anchor",
        str(material.anchor),
        "--issuer",
        f"local={material.west[0]}",
        "--issuer-key",
        f"local={material.west[1]}",
    ]
    assert _up(capsys, paths.home, *flags)[0] == 0
    paths.db.touch()
    code, _, err = _up(capsys, paths.home, "--issuer", str(material.east[0]), "--issuer-key", str(material.east[1]))
    assert code == 1 and "differs from the issuer cluster local already uses" in err
    assert read_cert(paths.issuer_cert("local")) == read_cert(material.west[0])
