"""What every sample app does to behave like a well-mannered container process.

Flags fall back to environment variables, one line is logged to stderr at start,
and SIGTERM (or Ctrl-C) stops the app with exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

# Kubernetes gives pods this long by default before SIGKILL; stay well inside it.
DRAIN_SECONDS = 10.0


class CannotListen(Exception):
    """The app could not open its port; `run_until_stopped` reports it in one line and exits 1."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason} (is another process using the port?)")
        self.address = address


@dataclass(frozen=True)
class Identity:
    """Where this process runs, as the pod spec tells it through the downward API."""

    pod: str
    """POD_NAME, or the hostname when unset (a pod's hostname is its name anyway)."""
    namespace: str | None
    """POD_NAMESPACE, or None outside Kubernetes."""
    cluster: str | None
    """ISTHMUS_CLUSTER, set by the demo manifests so multi-cluster tests see where a reply came from."""

    @classmethod
    def from_env(cls) -> Identity:
        return cls(
            pod=os.environ.get("POD_NAME") or socket.gethostname(),
            namespace=os.environ.get("POD_NAMESPACE") or None,
            cluster=os.environ.get("ISTHMUS_CLUSTER") or None,
        )

    def fields(self) -> str:
        return f"pod={self.pod} namespace={self.namespace or '-'} cluster={self.cluster or '-'}"


def port_number(text: str) -> int:
    """argparse type for a port; 0 asks the kernel for a free one (the start line says which)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {port}")
    return port


def add_listen_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    # argparse runs `type` on string defaults too, so a bad PORT env var is reported like a bad flag.
    parser.add_argument(
        "--port",
        type=port_number,
        default=os.environ.get("PORT", str(default_port)),
        help=f"port to listen on; 0 picks a free one (env PORT, default {default_port})",
    )
    # Not HOST: zsh and some images set HOST to the machine name.
    parser.add_argument(
        "--bind",
        default=os.environ.get("BIND_ADDRESS", "0.0.0.0"),
        help="address to listen on (env BIND_ADDRESS, default 0.0.0.0)",
    )


def log(app: str, message: str) -> None:
    print(f"{app} {message}", file=sys.stderr, flush=True)


async def listen(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    bind: str,
    port: int,
    limit: int = 64 * 1024,
) -> asyncio.Server:
    try:
        return await asyncio.start_server(handle, bind, port, limit=limit)
    except OSError as e:
        raise CannotListen(f"{bind}:{port}", e.strerror or str(e)) from None


def run_until_stopped(app: str, serve: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> int:
    """Run `serve(stop)` on a fresh event loop; `stop` is set on SIGTERM or SIGINT. Returns the exit code."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        asyncio.run(main())
    except CannotListen as e:
        log(app, str(e))
        return 1
    return 0
