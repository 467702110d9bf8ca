"""JSON-lines request/response over a Unix socket: how the CLI and the control plane reach the platform.

One request per line, `{"op": ..., ...}`; one response per line, `{"ok": true, ...}`
or `{"ok": false, "error": "..."}`. A watch answers with a stream of lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], asyncio.StreamWriter], Awaitable[dict[str, Any] | None]]
MAX_LINE = 64 * 1024 * 1024


class RpcError(Exception):
    """The other side answered with an error, or could not be reached."""


def encode_line(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


async def serve(path: Path, handler: Handler) -> asyncio.AbstractServer:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict):
                        raise ValueError("request is not an object")
                except ValueError as e:
                    writer.write(encode_line({"ok": False, "error": f"bad request: {e}"}))
                    break
                resp = await handler(req, writer)
                if resp is None:  # the handler streamed its answer and owns the connection
                    return
                writer.write(encode_line(resp))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_client, path=str(path), limit=MAX_LINE)
    os.chmod(path, 0o600)
    return server


def call(path: Path, request: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """Blocking single call, for the CLI."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise RpcError(f"nothing is listening on {path}") from e
        s.sendall(encode_line(request))
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RpcError("the daemon closed the connection without answering")
            buf += chunk
    resp: dict[str, Any] = json.loads(buf)
    return resp


async def acall(path: Path, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path), limit=MAX_LINE), timeout)
    try:
        writer.write(encode_line(request))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise RpcError("connection closed without an answer")
        resp: dict[str, Any] = json.loads(line)
        return resp
    finally:
        writer.close()


async def stream(path: Path, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """A watch: yields each line the server sends until it closes the connection."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
    try:
        writer.write(encode_line(request))
        await writer.drain()
        while line := await reader.readline():
            yield json.loads(line)
    finally:
        writer.close()
