from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from tests.apps.conftest import App, StartApp, run_app, start_app


@pytest.fixture(scope="module")
def plain() -> Iterator[App]:
    app = start_app("tcp_echo")
    yield app
    app.stop()


@pytest.fixture(scope="module")
def greeter() -> Iterator[App]:
    app = start_app("tcp_echo", "--banner", "220 ready")
    yield app
    app.stop()


def client(app: App, *args: str) -> tuple[int, list[str]]:
    result = run_app("tcp_client", "127.0.0.1", str(app.port), *args)
    return result.returncode, result.stdout.splitlines()


def test_echoes_a_line(plain: App) -> None:
    assert client(plain, "--send", "hello") == (0, ["hello"])


def test_banner_comes_first(greeter: App) -> None:
    assert client(greeter, "--send", "hello", "--expect-banner") == (0, ["220 ready", "hello"])


def test_server_speaks_before_the_client_sends(greeter: App) -> None:
    with socket.create_connection(("127.0.0.1", greeter.port), timeout=5) as sock:
        assert sock.recv(100) == b"220 ready\r\n"


def test_unexpected_banner_is_a_mismatch(greeter: App) -> None:
    code, _ = client(greeter, "--send", "hello")
    assert code == 1


def test_missing_banner_times_out(plain: App) -> None:
    result = run_app("tcp_client", "127.0.0.1", str(plain.port), "--send", "x", "--expect-banner", "--timeout", "0.5")
    assert result.returncode == 1
    assert "timed out" in result.stderr


def test_banner_from_env(start: StartApp) -> None:
    app = start("tcp_echo", env={"BANNER": "hi from env"})
    assert client(app, "--send", "x", "--expect-banner") == (0, ["hi from env", "x"])


def test_large_payload_comes_back_intact(plain: App) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: more than any socket buffer, so backpressure matters
    received = bytearray()
    with socket.create_connection(("127.0.0.1", plain.port), timeout=5) as sock:
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        while len(received) < len(payload) and (chunk := sock.recv(65536)):
            received += chunk
        sender.join(timeout=5)
    assert bytes(received) == payload


def test_sigterm_exits_cleanly_with_a_client_connected(start: StartApp) -> None:
    app = start("tcp_echo")
    with socket.create_connection(("127.0.0.1", app.port), timeout=5) as sock:
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        assert app.stop() == 0
        assert sock.recv(10) == b""  # the server closed our connection on the way out
