"""A command-line client for `grpc_echo`, meant to be run inside pods by tests and the demo.

Prints each response on its own line; exits 1 with the gRPC status on stderr when the call fails.
"""

from __future__ import annotations

import argparse
import sys

import grpc

from isthmus.apps.grpc_echo import COUNT, MAX_COUNT, SAY, SERVICE

APP = "grpc_client"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m isthmus.apps.{APP}",
        description=f"Call {SERVICE} (served by isthmus.apps.grpc_echo) and print the responses.",
    )
    parser.add_argument("address", metavar="ADDRESS", help="server as HOST:PORT, e.g. echo.demo:9090")
    call = parser.add_mutually_exclusive_group(required=True)
    call.add_argument("--say", metavar="TEXT", help="unary Say: prints '<pod>: TEXT'")
    call.add_argument(
        "--count",
        metavar="N",
        type=int,
        help=f"server-streaming Count: prints N lines '<pod> i' (0-{MAX_COUNT})",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="SECONDS", help="deadline for the call (default 5)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # In a pod the mesh is the proxy; an inherited http_proxy must not reroute the call.
    options = [("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(args.address, options=options) as channel:
        try:
            # No (de)serializers: messages travel as the raw bytes grpc_echo expects.
            if args.say is not None:
                say: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(SAY)
                print(say(args.say.encode(), timeout=args.timeout).decode(errors="replace"))
            else:
                count: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(COUNT)
                for message in count(str(args.count).encode(), timeout=args.timeout):
                    print(message.decode(errors="replace"), flush=True)
        except grpc.RpcError as e:
            code = e.code() if isinstance(e, grpc.Call) else None
            details = e.details() if isinstance(e, grpc.Call) else str(e)
            name = code.name if code is not None else "UNKNOWN"
            print(f"{APP}: {name}: {details}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
