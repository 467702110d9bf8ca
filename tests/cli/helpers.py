"""What the CLI tests share: run `main` and capture its output, write CA files, fake the launcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from isthmus.cli.main import main
from isthmus.identity.anchors import CertificateAuthority
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.settings import MeshSettings


@dataclass
class FakeLauncher:
    calls: list[list[str]] = field(default_factory=list)
    settings: list[MeshSettings | None] = field(default_factory=list)

    def start(
        self,
        paths: StatePaths,
        clusters: list[str],
        progress: Callable[[str], None],
        settings: MeshSettings | None = None,
    ) -> dict[str, Any]:
        self.calls.append(clusters)
        self.settings.append(settings)
        return {"clusters": []}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_ca(ca: CertificateAuthority, folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    ca.write(cert, key)
    return cert, key


def read_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]
