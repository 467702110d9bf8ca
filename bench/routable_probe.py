"""Run inside a meshed pod: call a service by name until it answers from the expected app.

Prints `ready` once it polls, then one JSON line with CLOCK_MONOTONIC times (the
same clock as the host's: the mesh makes no time namespace) of the first name
resolution, the first HTTP answer of any status, and the first 200 whose body
contains --expect. Attempts are bounded in number and time.
"""

from __future__ import annotations

import argparse
import json
import socket
import time


def resolve(name: str) -> str | None:
    try:
        return socket.gethostbyname(name)
    except OSError:
        return None


def request(name: str, addr: str, port: int, timeout: float) -> tuple[int | None, bytes]:
    """(HTTP status, body); status None if no answer came."""
    try:
        with socket.create_connection((addr, port), timeout=timeout) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:  # includes timeouts: a VIP the sidecar does not know yet goes nowhere
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None), body


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--name", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--expect", required=True, help="a substring of the body of the right answer")
    ap.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    ap.add_argument("--attempt-timeout", type=float, default=0.05)
    ap.add_argument("--interval", type=float, default=0.01, help="pause between failed attempts")
    args = ap.parse_args()
    start = time.monotonic()
    out: dict[str, float | int | str | None] = {"resolved": None, "first_response": None, "routable": None}
    print("ready", flush=True)
    attempts = 0
    max_attempts = int(args.timeout / args.interval) + 1
    while time.monotonic() - start < args.timeout and attempts < max_attempts:
        attempts += 1
        addr = resolve(args.name)
        if addr is None:
            time.sleep(args.interval)
            continue
        if out["resolved"] is None:
            out["resolved"] = time.monotonic()
        status, body = request(args.name, addr, args.port, args.attempt_timeout)
        now = time.monotonic()
        if status is not None and out["first_response"] is None:
            out["first_response"], out["first_status"] = now, status
        out["last_status"] = status
        if status == 200 and args.expect.encode() in body:
            out["routable"] = now
            break
        time.sleep(args.interval)
    out["attempts"] = attempts
    print(json.dumps(out), flush=True)
    return 0 if out["routable"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
