from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from isthmus.apps.container import Identity
from isthmus.apps.whoami import BadRequest, Request, parse_head, reply_for
from tests.apps.conftest import App, StartApp, run_app, start_app

ENV = {"POD_NAME": "pod-a", "POD_NAMESPACE": "ns-1", "ISTHMUS_CLUSTER": "east"}


@pytest.fixture(scope="module")
def whoami() -> Iterator[App]:
    app = start_app("whoami", env=ENV)
    yield app
    app.stop()


def get(
    app: App, path: str, headers: dict[str, str] | None = None, timeout_s: float = 5.0
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=timeout_s)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_start_line_names_the_pod(whoami: App) -> None:
    assert "pod=pod-a namespace=ns-1 cluster=east" in whoami.start_line


def test_reply_names_pod_and_echoes_the_request(whoami: App) -> None:
    status, body = get(whoami, "/some/path?x=1", headers={"X-Test": "yes"})

    assert status == 200
    assert body["pod"] == "pod-a"
    assert body["namespace"] == "ns-1"
    assert body["cluster"] == "east"
    assert body["path"] == "/some/path"
    assert body["query"] == "x=1"
    assert body["headers"]["x-test"] == "yes"
    assert body["headers"]["host"] == whoami.address


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/?status=503", 503, id="503"),
        pytest.param("/x?status=404&delay_ms=0", 404, id="404"),
        pytest.param("/?status=abc", 400, id="not-a-number"),
        pytest.param("/?status=99", 400, id="out-of-range"),
        pytest.param("/?delay_ms=-1", 400, id="negative-delay"),
    ],
)
def test_status_parameter(whoami: App, path: str, expected: int) -> None:
    status, _ = get(whoami, path)
    assert status == expected


def test_delay_parameter_delays_the_answer(whoami: App) -> None:
    started = time.monotonic()
    status, _ = get(whoami, "/?delay_ms=300")
    assert status == 200
    assert 0.3 <= time.monotonic() - started < 2.0


def test_keep_alive_serves_many_requests_on_one_connection(whoami: App) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", whoami.port, timeout=5)
    try:
        connection.request("POST", "/with-body", body=b"x" * 100_000)
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        # A chunked body must be consumed too, or the next request on the connection would not parse.
        connection.request("POST", "/chunked", body=iter([b"abc", b"defg"]), encode_chunked=True)
        connection.getresponse().read()
        connection.request("GET", "/last")
        last = connection.getresponse()
        body = json.loads(last.read())
        assert connection.sock is sock  # http.client reconnects silently; the socket tells
    finally:
        connection.close()
    assert (first.status, last.status) == (200, 200)
    assert body["path"] == "/last"


def test_concurrent_delayed_requests_are_served_in_parallel(whoami: App) -> None:
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        status, _ = get(whoami, "/?delay_ms=400")
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(20)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert statuses == [200] * 20
    assert time.monotonic() - started < 2.0  # one after the other would take 8 s


def test_malformed_request_gets_400(whoami: App) -> None:
    with socket.create_connection(("127.0.0.1", whoami.port), timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")


def test_oversized_head_gets_431(whoami: App) -> None:
    with socket.create_connection(("127.0.0.1", whoami.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 431 ")


def test_sigterm_lets_a_request_in_progress_finish(start: StartApp) -> None:
    app = start("whoami")
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    idle = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    idle.request("GET", "/")
    idle.getresponse().read()  # now an idle keep-alive connection, which must not hold up the exit
    connection.request("GET", "/?delay_ms=500")
    time.sleep(0.1)

    app.process.terminate()
    response = connection.getresponse()
    response.read()
    connection.close()
    idle.close()

    assert response.status == 200
    assert response.getheader("Connection") == "close"
    assert app.process.wait(5) == 0


def test_port_in_use_is_reported_in_one_line(whoami: App) -> None:
    result = run_app("whoami", "--bind", "127.0.0.1", "--port", str(whoami.port))
    assert result.returncode == 1
    assert "cannot listen on" in result.stderr
    assert "Traceback" not in result.stderr


IDENTITY = Identity(pod="p", namespace=None, cluster=None)


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: h", True, id="1.1-default"),
        pytest.param(b"GET / HTTP/1.1\r\nConnection: close", False, id="1.1-close"),
        pytest.param(b"GET / HTTP/1.0", False, id="1.0-default"),
        pytest.param(b"GET / HTTP/1.0\r\nConnection: Keep-Alive", True, id="1.0-keep-alive"),
    ],
)
def test_keep_alive_rules(head: bytes, keep_alive: bool) -> None:
    assert parse_head(head).keep_alive is keep_alive


def test_repeated_headers_are_joined() -> None:
    request = parse_head(b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2")
    assert request.headers == {"x-a": "1, 2"}


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"GET /", id="no-version"),
        pytest.param(b"GET / SPDY/3", id="not-http-1"),
        pytest.param(b"GET / HTTP/1.1\r\nno colon", id="bad-header"),
    ],
)
def test_bad_heads_are_rejected(head: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_head(head)


def test_reply_carries_the_delay() -> None:
    request = Request(method="GET", target="/a?delay_ms=250&status=201", version="HTTP/1.1", headers={})
    reply = reply_for(request, IDENTITY)
    assert (reply.status, reply.delay_s) == (201, 0.25)
    assert json.loads(reply.body)["path"] == "/a"
