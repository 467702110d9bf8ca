"""An HTTP/1.1 server that answers every request with who it is and what it was sent.

The JSON body names the pod, namespace and cluster and echoes the request headers, so a test
can see where a request landed and what the mesh added on the way. `?status=` and `?delay_ms=`
make it fail or stall on demand; `--fail-share` and `--latency-ms` make the server itself fail a
known share of requests and answer slowly, so the mesh's metrics have something to show.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from isthmus.apps.container import DRAIN_SECONDS, Identity, add_listen_flags, listen, log, run_until_stopped

APP = "whoami"
MAX_DELAY_MS = 30_000  # a typo must not pin a connection for hours
MAX_HEAD_BYTES = 64 * 1024
_BODY_CHUNK = 64 * 1024


class BadRequest(Exception):
    """The request cannot be parsed; the connection is answered with 400 and closed."""


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with ", " as RFC 9110 allows."""

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    delay_s: float = 0.0


@dataclass(frozen=True)
class Faults:
    """How the server misbehaves on purpose."""

    fail_share: float = 0.0
    """Share of requests (0-1) answered with `fail_status` instead of their own status."""
    fail_status: int = 500
    latency_ms: int = 0
    """Added to every answer's delay."""


class FaultPlan:
    """Which requests fail: exactly `fail_share` of them, evenly spread (every 5th for 0.2), not at
    random, so whoever counts N requests knows to expect N * fail_share failures, give or take one."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._owed = 0.0

    def apply(self, reply: Reply) -> Reply:
        delay_s = reply.delay_s + self.faults.latency_ms / 1000
        self._owed += self.faults.fail_share
        if self._owed >= 1.0 - 1e-9:
            self._owed -= 1.0
            return Reply(status=self.faults.fail_status, body=reply.body, delay_s=delay_s)
        return Reply(status=reply.status, body=reply.body, delay_s=delay_s)


def parse_head(head: bytes) -> Request:
    # latin-1 never fails to decode, and keeps odd header bytes visible in the echo.
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"bad header line {line!r}")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return Request(method=parts[0], target=parts[1], version=parts[2], headers=headers)


def reply_for(request: Request, identity: Identity) -> Reply:
    url = urlsplit(request.target)
    query = parse_qs(url.query)
    try:
        status = int(query.get("status", ["200"])[-1])
        delay_ms = int(query.get("delay_ms", ["0"])[-1])
    except ValueError:
        return _error(400, "status and delay_ms must be integers")
    if not 200 <= status <= 599:
        return _error(400, "status must be 200-599")
    if not 0 <= delay_ms <= MAX_DELAY_MS:
        return _error(400, f"delay_ms must be 0-{MAX_DELAY_MS}")
    body = {
        "pod": identity.pod,
        "namespace": identity.namespace,
        "cluster": identity.cluster,
        "method": request.method,
        "path": url.path,
        "query": url.query,
        "headers": request.headers,
    }
    return Reply(status=status, body=_json(body), delay_s=delay_ms / 1000)


def encode(reply: Reply, *, keep_alive: bool, head_only: bool) -> bytes:
    try:
        reason = HTTPStatus(reply.status).phrase
    except ValueError:
        reason = "Status"
    no_body = head_only or reply.status in (204, 304)
    lines = [f"HTTP/1.1 {reply.status} {reason}", "Content-Type: application/json"]
    if reply.status not in (204, 304):
        lines.append(f"Content-Length: {len(reply.body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if no_body else head + reply.body


def _error(status: int, message: str) -> Reply:
    return Reply(status=status, body=_json({"error": message}))


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


async def _discard_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request) -> None:
    # The body is never used, but it must be consumed so the next keep-alive request parses.
    if request.headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                raise BadRequest("bad chunk size") from None
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return
            await _skip(reader, size + 2)
    try:
        length = int(request.headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest("bad Content-Length") from None
    await _skip(reader, length)


async def _skip(reader: asyncio.StreamReader, count: int) -> None:
    while count > 0:
        count -= len(await reader.readexactly(min(count, _BODY_CHUNK)))


class Server:
    """Serves connections until told to drain, then lets requests in progress finish."""

    def __init__(self, identity: Identity, faults: Faults | None = None) -> None:
        self._identity = identity
        self._faults = FaultPlan(faults or Faults())
        self._draining = False
        self._idle: set[asyncio.Task[None]] = set()
        self._all: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._all.add(task)
        try:
            await self._serve(task, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away; nothing to answer
        except (BadRequest, asyncio.LimitOverrunError) as e:
            status = 400 if isinstance(e, BadRequest) else 431
            writer.write(encode(_error(status, str(e)), keep_alive=False, head_only=False))
        finally:
            self._all.discard(task)
            self._idle.discard(task)
            writer.close()

    async def _serve(
        self, task: asyncio.Task[None], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while not self._draining:
            self._idle.add(task)
            head = await reader.readuntil(b"\r\n\r\n")
            self._idle.discard(task)
            # Some clients send a stray CRLF after a body; RFC 9112 says to ignore it.
            request = parse_head(head[:-4].lstrip(b"\r\n"))
            await _discard_body(reader, writer, request)
            reply = self._faults.apply(reply_for(request, self._identity))
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            keep_alive = request.keep_alive and not self._draining
            writer.write(encode(reply, keep_alive=keep_alive, head_only=request.method == "HEAD"))
            await writer.drain()
            if not keep_alive:
                return

    async def drain(self, grace_s: float) -> None:
        self._draining = True
        # Idle keep-alive connections would never finish on their own; clients reconnect elsewhere.
        for task in self._idle:
            task.cancel()
        if self._all:
            _, late = await asyncio.wait(self._all, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m isthmus.apps.{APP}",
        description=(
            "HTTP/1.1 server that answers any request with JSON naming this pod "
            "(env POD_NAME, else the hostname), POD_NAMESPACE and ISTHMUS_CLUSTER, plus the "
            "request's method, path, query and headers. Query parameters: status=N answers "
            f"with status N (200-599); delay_ms=N waits N ms first (max {MAX_DELAY_MS})."
        ),
    )
    add_listen_flags(parser, default_port=8080)
    parser.add_argument(
        "--fail-share",
        type=_share,
        default=os.environ.get("FAIL_SHARE", "0"),
        metavar="F",
        help="answer this share of requests (0-1, evenly spread) with --fail-status (env FAIL_SHARE, default 0)",
    )
    parser.add_argument(
        "--fail-status",
        type=_failure_status,
        default=os.environ.get("FAIL_STATUS", "500"),
        metavar="N",
        help="the status of those answers, 400-599 (env FAIL_STATUS, default 500)",
    )
    parser.add_argument(
        "--latency-ms",
        type=_latency,
        default=os.environ.get("LATENCY_MS", "0"),
        metavar="N",
        help=f"wait N ms before every answer, 0-{MAX_DELAY_MS} (env LATENCY_MS, default 0)",
    )
    return parser.parse_args(argv)


def _number(text: str, kind: type[int] | type[float], low: float, high: float) -> float:
    """argparse type: a number in [low, high]; argparse names the flag in front of the message."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number from {low:g} to {high:g}: {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, got {text}")
    return value


def _share(text: str) -> float:
    return _number(text, float, 0, 1)


def _failure_status(text: str) -> int:
    return int(_number(text, int, 400, 599))


def _latency(text: str) -> int:
    return int(_number(text, int, 0, MAX_DELAY_MS))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    identity = Identity.from_env()

    async def serve(stop: asyncio.Event) -> None:
        server = Server(identity, Faults(args.fail_share, args.fail_status, args.latency_ms))
        listener = await listen(server.handle, args.bind, args.port, limit=MAX_HEAD_BYTES)
        port = listener.sockets[0].getsockname()[1]
        faults = (
            f" fail_share={args.fail_share:g} latency_ms={args.latency_ms}"
            if args.fail_share or args.latency_ms
            else ""
        )
        log(APP, f"listening on {args.bind}:{port} {identity.fields()}{faults}")
        await stop.wait()
        listener.close()
        await server.drain(DRAIN_SECONDS)

    return run_until_stopped(APP, serve)


if __name__ == "__main__":
    raise SystemExit(main())
