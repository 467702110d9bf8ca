from __future__ import annotations

from collections.abc import Iterator

import pytest

from isthmus.apps.grpc_echo import count_limit, say_reply
from tests.apps.conftest import App, StartApp, closed_port, run_app, start_app


@pytest.fixture(scope="module")
def echo() -> Iterator[App]:
    app = start_app("grpc_echo", env={"POD_NAME": "pod-g"})
    yield app
    app.stop()


def test_say_prefixes_the_pod(echo: App) -> None:
    result = run_app("grpc_client", echo.address, "--say", "hello mesh")
    assert (result.returncode, result.stdout) == (0, "pod-g: hello mesh\n")


@pytest.mark.parametrize(
    ("n", "lines"),
    [
        pytest.param("3", ["pod-g 1", "pod-g 2", "pod-g 3"], id="three"),
        pytest.param("0", [], id="none"),
    ],
)
def test_count_streams_n_messages(echo: App, n: str, lines: list[str]) -> None:
    result = run_app("grpc_client", echo.address, "--count", n)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == lines


def test_count_rejects_a_bad_n_with_invalid_argument(echo: App) -> None:
    result = run_app("grpc_client", echo.address, "--count", "-1")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr


def test_client_fails_when_nobody_listens() -> None:
    result = run_app("grpc_client", f"127.0.0.1:{closed_port()}", "--say", "x", "--timeout", "2")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr


def test_client_needs_exactly_one_call() -> None:
    assert run_app("grpc_client", "127.0.0.1:1").returncode == 2


def test_sigterm_exits_cleanly(start: StartApp) -> None:
    app = start("grpc_echo")
    assert app.stop() == 0


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        pytest.param(b"5", 5, id="number"),
        pytest.param(b" 7\n", 7, id="whitespace"),
        pytest.param(b"ten", None, id="word"),
        pytest.param(b"\xff", None, id="not-ascii"),
        pytest.param(b"10001", None, id="too-many"),
    ],
)
def test_count_limit(request_bytes: bytes, expected: int | None) -> None:
    assert count_limit(request_bytes) == expected


def test_say_reply() -> None:
    assert say_reply("p", b"hi") == b"p: hi"
