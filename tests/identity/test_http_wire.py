"""The identity service's HTTP/1.1 reader: well-formed requests in, everything else a 4xx/5xx."""

from __future__ import annotations

import asyncio
import json

import pytest

from isthmus.identity.http_wire import HttpError, HttpLimits, HttpRequest, HttpResponse, read_request

LIMITS = HttpLimits(
    max_head_bytes=1024, max_headers=8, max_body_bytes=256, head_timeout=0.2, body_timeout=0.2, idle_timeout=0.2
)


def read(data: bytes, *, eof: bool = True, first: bool = True) -> HttpRequest | None:
    async def go() -> HttpRequest | None:
        reader = asyncio.StreamReader(limit=LIMITS.max_head_bytes)
        reader.feed_data(data)
        if eof:
            reader.feed_eof()
        return await read_request(reader, LIMITS, first=first)

    return asyncio.run(go())


def test_reads_a_post_with_its_body() -> None:
    request = read(
        b"POST /v1/certificates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: 4\r\n\r\nbodyEXTRA"
    )
    assert request is not None
    assert (request.method, request.target, request.body, request.keep_alive) == (
        "POST",
        "/v1/certificates",
        b"body",
        True,
    )
    assert request.headers["authorization"] == "Bearer t"


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", True, id="http11-default"),
        pytest.param(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False, id="http11-close"),
        pytest.param(b"GET / HTTP/1.0\r\n\r\n", False, id="http10-default"),
        pytest.param(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True, id="http10-keep-alive"),
    ],
)
def test_keep_alive_follows_the_version_and_connection_header(head: bytes, keep_alive: bool) -> None:
    request = read(head)
    assert request is not None and request.keep_alive is keep_alive


def test_repeated_headers_are_joined() -> None:
    request = read(b"GET / HTTP/1.1\r\nAccept: a\r\naccept: b\r\n\r\n")
    assert request is not None and request.headers["accept"] == "a, b"


def test_clean_end_and_idle_timeout_are_not_errors() -> None:
    assert read(b"") is None
    assert read(b"", eof=False, first=False) is None  # idle keep-alive connection


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        pytest.param(b"POST / HTTP/1.1\r\n\r\n", 411, "Content-Length is required", id="no-length"),
        pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 999\r\n\r\n", 413, "larger than 256", id="body-too-large"),
        pytest.param(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "decimal number", id="negative-length"),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            400,
            "more than once",
            id="two-lengths",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501, "Transfer-Encoding", id="chunked"
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", 400, "before the whole body", id="short-body"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nX: " + b"a" * 2000 + b"\r\n\r\n", 431, "larger than 1024", id="head-too-large"
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 9 + b"\r\n", 431, "more than 8 header", id="too-many-headers"
        ),
        pytest.param(b"GET / HTTP/2.0\r\n\r\n", 400, "malformed request line", id="http2-line"),
        pytest.param(b"GET  / HTTP/1.1\r\n\r\n", 400, "malformed request line", id="double-space"),
        pytest.param(b"\x16\x03\x01\x02\xff\r\n\r\n", 400, "not ASCII", id="binary"),
        pytest.param(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400, "malformed header line", id="space-in-name"),
        pytest.param(b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400, "malformed header line", id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, "control characters", id="control-char"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: a", 400, "in the middle of a request head", id="eof-in-head"),
    ],
)
def test_malformed_requests_get_an_error_status(data: bytes, status: int, fragment: str) -> None:
    with pytest.raises(HttpError) as err:
        read(data)
    assert err.value.status == status
    assert fragment in err.value.message


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"GET / HTTP/1.1\r\n", 408, id="slow-head"),
        pytest.param(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 408, id="slow-body"),
    ],
)
def test_slow_clients_time_out(data: bytes, status: int) -> None:
    with pytest.raises(HttpError) as err:
        read(data, eof=False)
    assert err.value.status == status


def test_response_encoding() -> None:
    raw = HttpResponse(405, {"error": "no"}, (("Allow", "POST"),)).encode(keep_alive=False)
    head, body = raw.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 405 Method Not Allowed"
    assert "Connection: close" in lines and "Allow: POST" in lines and f"Content-Length: {len(body)}" in lines
    assert json.loads(body) == {"error": "no"}
