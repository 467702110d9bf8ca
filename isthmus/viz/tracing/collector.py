"""The `tracing` add-on's collector process: an OTLP/gRPC receiver and a query socket over one bounded store.

Sidecars export spans with OTLP's TraceService/Export, served by grpcio with the OTLP
messages that xds-protos ships (Envoy's config refers to them); `isthmus traces` asks over a Unix socket in JSON lines
(`isthmus.platform.local.rpc`): {"op": "traces", "limit": N} or {"op": "traces",
"trace_id": ID} -> {"ok": true, "spans": [...], "stats": {...}}.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from isthmus.platform.local import rpc
from isthmus.viz.tracing.spans import spans_of
from isthmus.viz.tracing.store import DEFAULT_MAX_SPANS, SpanStore

log = logging.getLogger(__name__)

QUERY_OP = "traces"
MAX_LIMIT = 1000


@dataclass(frozen=True)
class CollectorOptions:
    otlp_address: str
    """host:port the OTLP/gRPC receiver listens on."""
    query_socket: Path
    """Unix socket for queries; relative paths are taken from the working directory."""
    max_spans: int = DEFAULT_MAX_SPANS
    """How many spans the store keeps at most."""


_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def otlp_handler(store: SpanStore) -> grpc.GenericRpcHandler:
    """OTLP's one trace method, Export, storing what arrives."""

    async def export(
        request: trace_service_pb2.ExportTraceServiceRequest, _context: grpc.aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        store.add(spans_of(request))
        return trace_service_pb2.ExportTraceServiceResponse()

    method = grpc.unary_unary_rpc_method_handler(
        export,
        request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
        response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(_SERVICE, {"Export": method})


def answer(store: SpanStore, req: dict[str, Any]) -> dict[str, Any]:
    """One query's answer; bad input gets {"ok": false, "error": ...} naming it."""
    if req.get("op") != QUERY_OP:
        return {"ok": False, "error": f"unknown operation {req.get('op')!r} (this collector answers {QUERY_OP!r})"}
    limit = req.get("limit", 20)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        return {"ok": False, "error": f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit!r}"}
    trace_id = req.get("trace_id")
    if trace_id is not None and not (
        isinstance(trace_id, str) and len(trace_id) == 32 and all(c in "0123456789abcdef" for c in trace_id)
    ):
        return {"ok": False, "error": f"trace_id must be 32 lower-case hex digits, got {trace_id!r}"}
    traces = store.recent(limit, trace_id)
    return {
        "ok": True,
        "spans": [s.to_json() for spans in traces for s in spans],
        "stats": asdict(store.stats()),
    }


async def run(options: CollectorOptions) -> None:
    store = SpanStore(options.max_spans)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((otlp_handler(store),))
    server.add_insecure_port(options.otlp_address)
    await server.start()

    async def on_query(req: dict[str, Any], _writer: asyncio.StreamWriter) -> dict[str, Any]:
        return answer(store, req)

    query = await rpc.serve(options.query_socket, on_query)
    log.info("collecting spans on %s (OTLP/gRPC), queries on %s", options.otlp_address, options.query_socket)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        query.close()
        # A socket left behind would look like a collector to the CLI until the pod's directory goes.
        options.query_socket.unlink(missing_ok=True)
        await server.stop(grace=1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="isthmus-trace-collector",
        description="Receive the sidecars' spans (OTLP over gRPC) and keep the latest in memory for `isthmus traces`.",
    )
    parser.add_argument("--otlp-port", type=int, default=4317, help="port of the OTLP/gRPC receiver (default 4317)")
    parser.add_argument("--otlp-host", default="0.0.0.0", help="address to listen on (default: every address)")
    parser.add_argument("--query-socket", type=Path, required=True, help="Unix socket for queries")
    parser.add_argument(
        "--max-spans", type=int, default=DEFAULT_MAX_SPANS, help=f"spans kept at most (default {DEFAULT_MAX_SPANS})"
    )
    args = parser.parse_args(argv)
    if not 0 < args.otlp_port < 65536:
        parser.error(f"--otlp-port must be from 1 to 65535, got {args.otlp_port}")
    if args.max_spans < 1:
        parser.error(f"--max-spans must be at least 1, got {args.max_spans}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = CollectorOptions(f"{args.otlp_host}:{args.otlp_port}", args.query_socket, args.max_spans)
    asyncio.run(run(options))
    return 0
