"""Workload certificates signed per second on one core: the signing rules alone, and the identity service end to end.

In-process rows run the pure functions in a loop on one pinned core:
check_csr (parse + verify the CSR), issue_certificate (build + sign the leaf),
sign_csr (both), and IdentityService.handle (token check + JSON + sign_csr).
End-to-end rows start the identity server in its own process pinned to one
core, and drive it over TLS on a Unix socket from N concurrent asyncio clients
in this process (on the other core when there is one), either over kept-alive
connections or with a new TLS connection per certificate (what a sidecar
agent does). Every row stops at --seconds or --max-count, whichever comes
first; distinct CSRs (--csrs) rotate so nothing is cached.

    .venv/bin/python -m bench.csr_signing [--seconds 5] [--max-count 20000] [--clients 1,4,16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import ssl
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ec

from bench import report
from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle
from isthmus.identity.clock import SystemClock
from isthmus.identity.csr import build_csr, generate_key
from isthmus.identity.csr_rules import check_csr
from isthmus.identity.http_wire import HttpRequest
from isthmus.identity.load import parse_issuer, parse_trust_bundle
from isthmus.identity.server import IdentityServer
from isthmus.identity.service import CERTIFICATES_PATH, IdentityService
from isthmus.identity.signing import issue_certificate, sign_csr
from isthmus.identity.spiffe import workload_id
from isthmus.identity.tokens import HmacTokenVerifier, mint_pod_token, new_token_secret

TARGET = 500.0  # certificates per second, issue 3
CLUSTER = "bench"
WEB = workload_id("default", "web")
SERVER_CPU, CLIENT_CPU = 0, 1


def pin(cpu: int) -> int:
    chosen = cpu % (os.cpu_count() or 1)
    os.sched_setaffinity(0, {chosen})
    return chosen


def loop_rate(fn: Callable[[int], object], seconds: float, max_count: int) -> dict[str, float]:
    for i in range(50):  # warm caches and the allocator
        fn(i)
    count, start = 0, time.perf_counter()
    cpu0 = time.process_time()
    deadline = start + seconds
    while count < max_count and (count % 64 or time.perf_counter() < deadline):
        fn(count)
        count += 1
    elapsed = time.perf_counter() - start
    return {
        "count": count,
        "seconds": elapsed,
        "rate": count / elapsed,
        "cpu_ms": 1000 * (time.process_time() - cpu0) / count,
    }


def in_process(args: argparse.Namespace, material: dict[str, Any]) -> list[dict[str, Any]]:
    clock = SystemClock()
    bundle = parse_trust_bundle(material["anchor"], "anchor", clock)
    issuer = parse_issuer(material["issuer_cert"], material["issuer_key"], "issuer", "issuer key", bundle, clock)
    csrs = material["csrs"]
    keys = [k for c in csrs if isinstance(k := check_csr(c, WEB).public_key(), ec.EllipticCurvePublicKey)]
    service = IdentityService(
        issuer, bundle, HmacTokenVerifier(material["secret"], CLUSTER, "cluster.local", clock), clock
    )
    bodies = [json.dumps({"csr": c.decode()}).encode() for c in csrs]
    headers = {"authorization": f"Bearer {material['token']}"}
    steps: list[tuple[str, Callable[[int], object]]] = [
        ("check_csr (parse + verify CSR)", lambda i: check_csr(csrs[i % len(csrs)], WEB)),
        ("issue_certificate (build + sign leaf)", lambda i: issue_certificate(issuer, keys[i % len(keys)], WEB, clock)),
        ("sign_csr (the signing rules)", lambda i: sign_csr(issuer, csrs[i % len(csrs)], WEB, clock)),
        (
            "IdentityService.handle (+ token, JSON)",
            lambda i: service.handle(HttpRequest("POST", CERTIFICATES_PATH, headers, bodies[i % len(bodies)], True)),
        ),
    ]
    rows = []
    for name, fn in steps:
        rows.append({"path": name, "clients": 1, **loop_rate(fn, args.seconds, args.max_count)})
    assert service.stats.issued > 0 and not service.stats.refused
    return rows


def _serve(socket_path: str, material: dict[str, Any], ready: Any) -> None:
    pin(SERVER_CPU)
    clock = SystemClock()
    bundle = parse_trust_bundle(material["anchor"], "anchor", clock)
    issuer = parse_issuer(material["issuer_cert"], material["issuer_key"], "issuer", "issuer key", bundle, clock)
    service = IdentityService(
        issuer, bundle, HmacTokenVerifier(material["secret"], CLUSTER, "cluster.local", clock), clock
    )

    async def main() -> None:
        async with IdentityServer(service) as server:
            await server.start_unix(Path(socket_path))
            ready.set()
            await asyncio.Event().wait()

    asyncio.run(main())


async def _client(
    path: str, ctx: ssl.SSLContext, requests: list[bytes], deadline: float, budget: list[int], keep_alive: bool
) -> int:
    done, reader, writer = 0, None, None
    while budget[0] > 0 and time.perf_counter() < deadline:
        budget[0] -= 1
        if reader is None or writer is None:
            reader, writer = await asyncio.open_unix_connection(path, ssl=ctx, server_hostname="")
        writer.write(requests[done % len(requests)])
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head[:80]
        length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        done += 1
        if not keep_alive or b"Connection: close" in head:  # the server caps requests per connection
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()
    return done


def end_to_end(args: argparse.Namespace, material: dict[str, Any], clients: int, keep_alive: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="csr-bench-") as tmp:
        path = os.path.join(tmp, "identity.sock")
        spawn = multiprocessing.get_context("spawn")
        ready = spawn.Event()
        server = spawn.Process(target=_serve, args=(path, material, ready), daemon=True)
        server.start()
        try:
            if not ready.wait(30):
                raise RuntimeError("identity server did not start")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(cadata=material["anchor"].decode())
            connection = "keep-alive" if keep_alive else "close"
            requests = []
            for csr in material["csrs"]:
                body = json.dumps({"csr": csr.decode()}).encode()
                requests.append(
                    f"POST {CERTIFICATES_PATH} HTTP/1.1\r\nHost: identity\r\nAuthorization: Bearer {material['token']}\r\n"
                    f"Content-Type: application/json\r\nConnection: {connection}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

            async def run(seconds: float, budget: int) -> tuple[int, float]:
                left, start = [budget], time.perf_counter()
                counts = await asyncio.gather(
                    *(_client(path, ctx, requests, start + seconds, left, keep_alive) for _ in range(clients))
                )
                return sum(counts), time.perf_counter() - start

            asyncio.run(run(0.5, 200))  # warm-up
            proc = psutil.Process(server.pid)
            cpu0, own0 = sum(proc.cpu_times()[:2]), time.process_time()
            count, elapsed = asyncio.run(run(args.seconds, args.max_count))
            server_cpu, client_cpu = sum(proc.cpu_times()[:2]) - cpu0, time.process_time() - own0
        finally:
            server.kill()
            server.join(10)
    name = f"service over TLS/Unix socket, {'kept-alive' if keep_alive else 'new TLS connection per cert'}"
    return {
        "path": name,
        "clients": clients,
        "count": count,
        "seconds": elapsed,
        "rate": count / elapsed,
        "cpu_ms": 1000 * server_cpu / count,
        "server_cpu_share": server_cpu / elapsed,
        "client_cpu_share": client_cpu / elapsed,
    }


def make_material(csr_count: int) -> dict[str, Any]:
    clock = SystemClock()
    anchor = create_trust_anchor(clock)
    issuer = create_issuer(anchor, CLUSTER, clock)
    secret = new_token_secret()
    return {
        "anchor": TrustBundle.of([anchor.certificate]).pem(),
        "issuer_cert": issuer.certificate_pem(),
        "issuer_key": issuer.key_pem(),
        "secret": secret,
        "token": mint_pod_token(secret, CLUSTER, "default", "web", "web-0", clock, timedelta(hours=2)),
        "csrs": [build_csr(generate_key(), WEB.uri) for _ in range(csr_count)],
    }


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.csr_signing", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="time limit per row")
    ap.add_argument("--max-count", type=int, default=20000, help="certificate limit per row")
    ap.add_argument("--clients", default="1,4,16", help="concurrent clients for the end-to-end rows")
    ap.add_argument("--csrs", type=int, default=64, help="distinct CSRs to rotate through")
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",") if c]
    if not 0 < args.seconds <= 60 or not 0 < args.max_count <= 200_000 or not all(0 < c <= 256 for c in clients):
        ap.error("keep --seconds in (0, 60], --max-count in (0, 200000] and each client count in (0, 256]")
    material = make_material(args.csrs)
    report.print_header({"target": f"≥ {TARGET:g} certificates/s on one core", "csrs": args.csrs})
    own = pin(CLIENT_CPU)
    rows = [r | {"cpu": "1 (pinned)"} for r in _pinned(lambda: in_process(args, material))]
    for keep_alive in (True, False):
        for n in clients:
            rows.append(end_to_end(args, material, n, keep_alive) | {"cpu": f"server pinned; clients on cpu {own}"})
    saved = report.save("csr_signing", {"settings": vars(args), "rows": rows})
    print(
        report.table(
            [
                "path",
                "clients",
                "certs",
                "seconds",
                "certs/s",
                "server CPU ms/cert",
                "server core busy",
                "client core busy",
            ],
            [
                [
                    r["path"],
                    str(r["clients"]),
                    str(r["count"]),
                    report.fmt(r["seconds"], 2),
                    report.fmt(r["rate"]),
                    report.fmt(r["cpu_ms"], 3),
                    report.fmt(100 * r["server_cpu_share"]) + " %" if "server_cpu_share" in r else "–",
                    report.fmt(100 * r["client_cpu_share"]) + " %" if "client_cpu_share" in r else "–",
                ]
                for r in rows
            ],
        )
    )
    print(f"\nresults: {saved}")
    return 0


def _pinned(fn: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    # The pure rows run on the server's core, so both kinds of rows see the same CPU.
    previous = os.sched_getaffinity(0)
    pin(SERVER_CPU)
    try:
        return fn()
    finally:
        os.sched_setaffinity(0, previous)


if __name__ == "__main__":
    raise SystemExit(main())
