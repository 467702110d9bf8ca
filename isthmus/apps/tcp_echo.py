"""A TCP server that sends back every byte it receives, optionally greeting first.

With `--banner` it speaks first, as SMTP or MySQL servers do: a proxy that waits for the
client's first bytes to detect the protocol stalls on such servers, which is what the
mesh's protocol-detection timeout tests need.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from isthmus.apps.container import Identity, add_listen_flags, listen, log, run_until_stopped

APP = "tcp_echo"
_CHUNK = 64 * 1024


class Server:
    def __init__(self, banner: bytes | None) -> None:
        self._banner = banner
        self._connections: set[asyncio.Task[None]] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if self._banner is not None:
                writer.write(self._banner)
            while data := await reader.read(_CHUNK):
                writer.write(data)
                # Waiting for the peer to read keeps a fast sender from growing our buffer without bound.
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def close_all(self) -> None:
        # An echo stream has no natural end, so at shutdown there is nothing to wait for.
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


def banner_line(text: str | None) -> bytes | None:
    return None if text is None else text.encode() + b"\r\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m isthmus.apps.{APP}",
        description=(
            "TCP server that echoes back every byte it receives. With --banner it first sends "
            "one line on connect, before reading anything (server-speaks-first, like SMTP). "
            "Try it with: python -m isthmus.apps.tcp_client HOST PORT --send hello"
        ),
    )
    add_listen_flags(parser, default_port=7070)
    parser.add_argument(
        "--banner",
        metavar="TEXT",
        default=os.environ.get("BANNER"),
        help="send TEXT followed by CRLF as soon as a client connects (env BANNER; default: no banner)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    identity = Identity.from_env()

    async def serve(stop: asyncio.Event) -> None:
        server = Server(banner_line(args.banner))
        listener = await listen(server.handle, args.bind, args.port)
        port = listener.sockets[0].getsockname()[1]
        mode = "banner" if args.banner is not None else "client-first"
        log(APP, f"listening on {args.bind}:{port} mode={mode} {identity.fields()}")
        await stop.wait()
        listener.close()
        await server.close_all()

    return run_until_stopped(APP, serve)


if __name__ == "__main__":
    raise SystemExit(main())
