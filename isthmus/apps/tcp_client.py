"""A command-line client for `tcp_echo`: send one line, print what comes back, fail on mismatch.

Exit codes: 0 when the echo matches (and the banner arrived, if expected), 1 otherwise.
"""

from __future__ import annotations

import argparse
import socket
import sys

from isthmus.apps.container import port_number

APP = "tcp_client"
MAX_BANNER_BYTES = 4096


class Mismatch(Exception):
    """The server's answer was not what an echo server should say."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m isthmus.apps.{APP}",
        description=(
            "Connect to a TCP echo server (isthmus.apps.tcp_echo), send TEXT plus a newline and "
            "print what comes back. Exits 1 when the reply differs, the connection fails or "
            "nothing arrives in time."
        ),
    )
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("port", metavar="PORT", type=port_number)
    parser.add_argument("--send", metavar="TEXT", required=True, help="line to send")
    parser.add_argument(
        "--expect-banner",
        action="store_true",
        help="read and print one line from the server before sending (for tcp_echo --banner)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for each of connect, banner and echo (default 5)",
    )
    return parser.parse_args(argv)


def exchange(sock: socket.socket, text: str, expect_banner: bool) -> None:
    # Raw recv rather than makefile: after a timeout a buffered reader's state is undefined.
    received = b""
    if expect_banner:
        while b"\n" not in received:
            chunk = sock.recv(MAX_BANNER_BYTES)
            if not chunk:
                raise Mismatch("connection closed before the banner")
            received += chunk
            if len(received) > MAX_BANNER_BYTES:
                raise Mismatch("banner line too long")
        banner, _, received = received.partition(b"\n")
        print(banner.decode(errors="replace").rstrip("\r"), flush=True)
    payload = text.encode() + b"\n"
    sock.sendall(payload)
    while len(received) < len(payload):
        chunk = sock.recv(len(payload) - len(received))
        if not chunk:
            break
        received += chunk
    print(received.decode(errors="replace").rstrip("\n"), flush=True)
    if received != payload:
        raise Mismatch(f"sent {payload!r} but got back {received!r}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
            exchange(sock, args.send, args.expect_banner)
    except TimeoutError:
        print(f"{APP}: timed out after {args.timeout} s", file=sys.stderr)
        return 1
    except (OSError, Mismatch) as e:
        print(f"{APP}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
