"""The loadgen command line, validated in one place into an `Options` object."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from urllib.parse import urlsplit

PROG = "python -m isthmus.apps.loadgen"
MAX_RATE = 10_000.0
MAX_DURATION_S = 3600.0
MAX_REQUESTS = 10_000_000  # latencies are kept one float each: 80 MB at most
MAX_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 512


@dataclass(frozen=True)
class Target:
    url: str
    """As given on the command line; reports use it as the label."""
    host: str
    port: int
    path: str
    """Path and query, as sent in the request line."""


@dataclass(frozen=True)
class Options:
    targets: tuple[Target, ...]
    """Requests go to these in turn, so each gets the same share."""
    rate: float
    """Requests per second, all targets together."""
    duration_s: float
    """Requests are due during this many seconds from the start."""
    max_requests: int
    """Stop scheduling after this many, even if the duration is not over."""
    timeout_s: float
    """Per request: for each socket operation, and for how late a request may start."""
    connections: int
    """Sender threads, each keeping one connection per host: at most this many requests in flight."""
    json: bool
    """Print the report as JSON instead of a table."""

    @property
    def planned(self) -> int:
        """Requests due in [0, duration): one every 1/rate seconds, capped by max_requests."""
        return min(self.max_requests, math.ceil(self.rate * self.duration_s))


DESCRIPTION = """\
Send GET requests at a fixed rate for a fixed time and report what came back.

Open loop: request i is due at start + i/RATE whether or not earlier ones have
been answered, and its latency counts from that due time, so a stalled server
shows up as latency instead of silently lowering the rate (no coordinated
omission). A request that cannot start within --timeout of its due time, because
all connections are busy, fails as "not_sent"; raise --connections if that happens.

The report has totals, failures by reason (status_NNN, timeout, connection_error,
bad_response, not_sent), the achieved rate (answers per second), latency
percentiles of the answered requests, and counts by the "pod" field of JSON
replies such as whoami's. Exit code 0 when every request got a 2xx answer.

example: %(prog)s http://whoami.demo:8080/ --rate 100 --duration 10
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("urls", metavar="URL", nargs="+", help="http:// URL; with several, each gets a turn")
    parser.add_argument(
        "--rate", type=float, required=True, help=f"requests per second, all URLs together (max {MAX_RATE:g})"
    )
    parser.add_argument(
        "--duration",
        type=float,
        required=True,
        metavar="SECONDS",
        help=f"how long to send for (max {MAX_DURATION_S:g})",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=1_000_000,
        metavar="N",
        help="stop after N requests even if --duration is not over (default 1000000)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="per connect, send and wait for an answer; also how late a request may start (default 5)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=32,
        metavar="N",
        help="most requests in flight: N sender threads, each with a keep-alive connection per host (default 32)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    return parser


def target(url: str) -> Target:
    """Raises ValueError, with a message for the user, when url is not a usable http:// URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// URL with a host")
    port = parts.port or 80  # .port itself raises ValueError on a bad port
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url=url, host=parts.hostname, port=port, path=path)


def parse_options(argv: list[str] | None = None) -> Options:
    """Exits with status 2 and a usage message on bad input, like any argparse program."""
    parser = _parser()
    args = parser.parse_args(argv)
    checks = [
        (0 < args.rate <= MAX_RATE, f"--rate must be > 0 and <= {MAX_RATE:g}"),
        (0 < args.duration <= MAX_DURATION_S, f"--duration must be > 0 and <= {MAX_DURATION_S:g}"),
        (1 <= args.max_requests <= MAX_REQUESTS, f"--max-requests must be 1-{MAX_REQUESTS}"),
        (0 < args.timeout <= MAX_TIMEOUT_S, f"--timeout must be > 0 and <= {MAX_TIMEOUT_S:g}"),
        (1 <= args.connections <= MAX_CONNECTIONS, f"--connections must be 1-{MAX_CONNECTIONS}"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    try:
        targets = tuple(target(url) for url in args.urls)
    except ValueError as e:
        parser.error(str(e))
    return Options(
        targets=targets,
        rate=args.rate,
        duration_s=args.duration,
        max_requests=args.max_requests,
        timeout_s=args.timeout,
        connections=args.connections,
        json=args.json,
    )
