from __future__ import annotations

import pytest

from tests.apps.conftest import run_app

APPS = ["whoami", "grpc_echo", "grpc_client", "tcp_echo", "tcp_client", "loadgen"]


@pytest.mark.parametrize("name", APPS)
def test_help_explains_the_command(name: str) -> None:
    result = run_app(name, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: python -m isthmus.apps.{name}")
