"""A small, strict HTTP/1.1 request reader and JSON response writer for the identity service.

Deliberately narrow: the only client is the sidecar agent, so anything outside
`METHOD target HTTP/1.x`, CRLF-terminated headers and a Content-Length body is
refused with a 4xx rather than guessed at. Every read is bounded in size and
time, so a slow or hostile peer costs a few KiB and a timeout, never a worker.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on what one client may send; the defaults are generous for a ~1 KiB CSR request."""

    max_head_bytes: int = 16 * 1024
    """Request line plus headers."""
    max_headers: int = 64
    max_body_bytes: int = 64 * 1024
    head_timeout: float = 10.0
    """Seconds to receive a whole request head once a connection is open."""
    body_timeout: float = 10.0
    idle_timeout: float = 30.0
    """Seconds a kept-alive connection may wait for its next request."""
    max_requests_per_connection: int = 1000
    max_connections: int = 1024
    """Connections served at once; more are closed at once, so a flood cannot exhaust descriptors."""
    handshake_timeout: float = 10.0
    """Seconds for the TLS handshake."""


DEFAULT_LIMITS = HttpLimits()


@dataclass(frozen=True)
class HttpRequest:
    method: str
    target: str
    headers: Mapping[str, str]
    """Lowercased names; a repeated header's values joined with ', '."""
    body: bytes
    keep_alive: bool


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Mapping[str, Any]
    headers: tuple[tuple[str, str], ...] = field(default=())

    def encode(self, keep_alive: bool) -> bytes:
        payload = json.dumps(self.body, separators=(",", ":")).encode() + b"\n"
        head = [
            f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            "Cache-Control: no-store",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + payload


class HttpError(Exception):
    """A request that cannot be read; answered with `status` and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> HttpResponse:
        return HttpResponse(self.status, {"error": self.message})


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2
_REQUEST_LINE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP/1\.([01])")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters other than tab
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def read_request(reader: asyncio.StreamReader, limits: HttpLimits, *, first: bool) -> HttpRequest | None:
    """The next request on the connection, None at a clean end (EOF or idle timeout), or HttpError.

    `reader` must have been created with limit=limits.max_head_bytes, so an
    over-long head stops at that many bytes.
    """
    try:
        head = await asyncio.wait_for(
            reader.readuntil(b"\r\n\r\n"), limits.head_timeout if first else limits.idle_timeout
        )
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise HttpError(400, "connection closed in the middle of a request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"request head is larger than {limits.max_head_bytes} bytes") from None
    except TimeoutError:
        if first:
            raise HttpError(408, "request head not received in time") from None
        return None
    method, target, version, headers = _parse_head(head, limits)
    body = await _read_body(reader, method, headers, limits)
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "keep-alive" in connection if version == "0" else "close" not in connection
    return HttpRequest(method, target, headers, body, keep_alive)


def _parse_head(head: bytes, limits: HttpLimits) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head[:-4].decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "request head is not ASCII") from None
    request_line, *lines = text.split("\r\n")
    match = _REQUEST_LINE.fullmatch(request_line)
    if not match:
        raise HttpError(400, "malformed request line; expected 'METHOD /path HTTP/1.1'")
    if len(lines) > limits.max_headers:
        raise HttpError(431, f"more than {limits.max_headers} header fields")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            # Also catches obsolete line folding (a line starting with whitespace).
            raise HttpError(400, f"malformed header line {line[:40]!r}")
        name, value = name.lower(), value.strip(" \t")
        if _CONTROL.search(value):
            raise HttpError(400, f"header {name} holds control characters")
        if name in headers:
            if name in ("content-length", "authorization", "host", "transfer-encoding"):
                raise HttpError(400, f"header {name} appears more than once")
            headers[name] += ", " + value
        else:
            headers[name] = value
    return match.group(1), match.group(2), match.group(3), headers


async def _read_body(
    reader: asyncio.StreamReader, method: str, headers: Mapping[str, str], limits: HttpLimits
) -> bytes:
    if "transfer-encoding" in headers:
        # Chunked bodies are not needed by any client of ours; refusing them removes a
        # whole class of request-smuggling ambiguity between Content-Length and chunks.
        raise HttpError(501, "Transfer-Encoding is not supported; send the body with Content-Length")
    length_text = headers.get("content-length")
    if length_text is None:
        if method in _BODY_METHODS:
            raise HttpError(411, "Content-Length is required")
        return b""
    if not length_text.isdigit() or len(length_text) > 12:
        raise HttpError(400, "Content-Length must be a decimal number of bytes")
    length = int(length_text)
    if length > limits.max_body_bytes:
        raise HttpError(413, f"request body is larger than {limits.max_body_bytes} bytes")
    try:
        return await asyncio.wait_for(reader.readexactly(length), limits.body_timeout)
    except asyncio.IncompleteReadError:
        raise HttpError(400, "connection closed before the whole body arrived") from None
    except TimeoutError:
        raise HttpError(408, "request body not received in time") from None
