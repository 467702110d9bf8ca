"""A gRPC server, `isthmus.demo.Echo`, whose replies name the pod that sent them.

Messages are raw bytes (generic handlers with no (de)serializers), so there is no .proto to
compile: `Say` answers b"<pod>: " + request; `Count` takes an ASCII integer N and streams
"<pod> 1" ... "<pod> N".
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import grpc

from isthmus.apps.container import (
    DRAIN_SECONDS,
    CannotListen,
    Identity,
    add_listen_flags,
    log,
    run_until_stopped,
)

APP = "grpc_echo"
SERVICE = "isthmus.demo.Echo"
SAY = f"/{SERVICE}/Say"
COUNT = f"/{SERVICE}/Count"
MAX_COUNT = 10_000  # a stream is held in memory by slow readers; bound what one request can ask for


def say_reply(pod: str, request: bytes) -> bytes:
    return pod.encode() + b": " + request


def count_limit(request: bytes) -> int | None:
    """N from Count's request, or None when it is not an integer in 0..MAX_COUNT."""
    try:
        n = int(request.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return n if 0 <= n <= MAX_COUNT else None


def echo_handler(pod: str) -> grpc.GenericRpcHandler:
    async def say(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return say_reply(pod, request)

    async def count(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        n = count_limit(request)
        if n is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Count wants an ASCII integer 0-{MAX_COUNT}, got {request!r}"
            )
            return
        for i in range(1, n + 1):
            yield f"{pod} {i}".encode()

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Count": grpc.unary_stream_rpc_method_handler(count),
        },
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m isthmus.apps.{APP}",
        description=(
            f"gRPC server for service {SERVICE} with raw-bytes messages (no .proto needed). "
            "Say returns '<pod>: <request>'; Count takes an ASCII integer N and streams "
            "'<pod> 1' ... '<pod> N'. The pod name comes from env POD_NAME, else the hostname. "
            "Try it with: python -m isthmus.apps.grpc_client HOST:PORT --say hello"
        ),
    )
    add_listen_flags(parser, default_port=9090)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    identity = Identity.from_env()

    async def serve(stop: asyncio.Event) -> None:
        # grpcio defaults to SO_REUSEPORT, which would let a second copy share the port silently.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((echo_handler(identity.pod),))
        # IPv6 literals need brackets in a gRPC address.
        host = f"[{args.bind}]" if ":" in args.bind else args.bind
        try:
            port = server.add_insecure_port(f"{host}:{args.port}")
        except RuntimeError as e:  # grpcio's only signal for a failed bind
            raise CannotListen(f"{args.bind}:{args.port}", str(e)) from None
        await server.start()
        log(APP, f"listening on {args.bind}:{port} {identity.fields()}")
        await stop.wait()
        await server.stop(DRAIN_SECONDS)

    return run_until_stopped(APP, serve)


if __name__ == "__main__":
    raise SystemExit(main())
