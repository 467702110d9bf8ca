from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.harness import REPO, Mesh, host_network_state

pytestmark = pytest.mark.netns


def _require_tools() -> None:
    for tool in ("unshare", "nsenter", "ip", "iptables-restore", "curl"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            pytest.fail(f"{tool} is missing: run scripts/setup.sh (as root it installs it)")


@pytest.fixture(scope="session")
def host_before() -> dict[str, str]:
    return host_network_state()


@pytest.fixture(scope="session")
def demo_mesh(tmp_path_factory: pytest.TempPathFactory, host_before: dict[str, str]) -> Iterator[Mesh]:
    """One local cluster running the demo apps, shared by the tests that only send traffic."""
    _require_tools()
    mesh = Mesh(tmp_path_factory.mktemp("mesh") / "home")
    try:
        mesh.run("up")
        mesh.run("apply", "-f", str(REPO / "examples" / "demo.yaml"), "--wait", "--timeout", "120")
        yield mesh
    finally:
        mesh.run("down", check=False)


@pytest.fixture
def fresh_home(tmp_path: Path) -> Iterator[Mesh]:
    """A mesh of the test's own, torn down even when the test fails."""
    _require_tools()
    mesh = Mesh(tmp_path / "home")
    try:
        yield mesh
    finally:
        mesh.run("down", check=False)
