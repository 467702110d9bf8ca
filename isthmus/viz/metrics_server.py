"""A minimal HTTP server for one page of Prometheus text: `GET /metrics`, on a Unix socket or a TCP address.

The control plane serves its own metrics with it. HTTP/1.0 semantics (one request
per connection) are all a scraper needs, and keep the server small enough to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from isthmus.viz.prometheus_text import CONTENT_TYPE

PATH = "/metrics"
MAX_HEAD = 8192
READ_TIMEOUT = 5.0


def _answer(status: str, body: bytes, content_type: str, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + body


def respond(request_line: str, page: Callable[[], str]) -> bytes:
    """The whole answer to one request line (headers do not matter here)."""
    parts = request_line.split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _answer("400 Bad Request", b"bad request line\n", "text/plain", False)
    method, target, _ = parts
    if method not in ("GET", "HEAD"):
        return _answer("405 Method Not Allowed", b"only GET\n", "text/plain", False)
    if target.split("?", 1)[0] != PATH:
        return _answer("404 Not Found", f"only {PATH} is served here\n".encode(), "text/plain", False)
    return _answer("200 OK", page().encode(), CONTENT_TYPE, method == "HEAD")


async def serve_metrics(address: str, page: Callable[[], str]) -> asyncio.AbstractServer:
    """Serve `page()` at GET /metrics on "unix:/abs/path.sock" or "host:port"."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            writer.write(respond(head.split(b"\r\n", 1)[0].decode("latin-1"), page))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that sends no complete request head gets nothing
        finally:
            writer.close()

    if address.startswith("unix:"):
        path = Path(address.removeprefix("unix:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server = await asyncio.start_unix_server(on_client, path=str(path), limit=MAX_HEAD)
        os.chmod(path, 0o600)
        return server
    host, _, port = address.rpartition(":")
    return await asyncio.start_server(on_client, host, int(port), limit=MAX_HEAD)
