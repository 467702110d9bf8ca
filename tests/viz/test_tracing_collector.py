"""The collector process's I/O: a real gRPC client exports OTLP to it on loopback, and its query socket answers."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from isthmus.platform.local import rpc
from isthmus.viz.tracing.collector import CollectorOptions, answer, run
from isthmus.viz.tracing.spans import Span
from isthmus.viz.tracing.store import SpanStore
from tests.viz.tracing_samples import TRACE, export, span


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="isthmus-tr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def collector(short_dir: Path, max_spans: int = 100) -> AsyncIterator[tuple[str, Path]]:
    options = CollectorOptions(f"127.0.0.1:{_free_port()}", short_dir / "query.sock", max_spans)
    task = asyncio.create_task(run(options))
    try:
        for _ in range(200):  # bounded: up within 2 s
            if options.query_socket.exists():
                break
            await asyncio.sleep(0.01)
        yield options.otlp_address, options.query_socket
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _export(address: str, *spans: Span) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        # What an OTLP exporter sends: the method's full name, the request's protobuf bytes.
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=trace_service_pb2.ExportTraceServiceRequest.SerializeToString,
            response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
        )
        await call(export(*spans), timeout=5)


def test_spans_exported_over_otlp_grpc_are_answered_on_the_query_socket(short_dir: Path) -> None:
    async def scenario() -> dict[str, Any]:
        async with collector(short_dir) as (address, query):
            await _export(address, span("00f067aa0ba902b7"))
            await _export(address, span("53995c3f42cd8ad8", "00f067aa0ba902b7", kind="server", pod="api-1"))
            await _export(address, span("1111111111111111", trace_id="e" * 32))
            latest = await rpc.acall(query, {"op": "traces", "limit": 1})
            one = await rpc.acall(query, {"op": "traces", "trace_id": TRACE})
            return {"latest": latest, "one": one}

    got = asyncio.run(scenario())
    assert got["latest"]["ok"] and [s["trace_id"] for s in got["latest"]["spans"]] == ["e" * 32]
    assert got["latest"]["stats"] == {"spans": 3, "traces": 2, "received": 3, "evicted": 0}
    spans = [Span.from_json(s) for s in got["one"]["spans"]]
    assert [(s.span_id, s.parent_span_id, s.attribute("k8s.pod.name")) for s in spans] == [
        ("00f067aa0ba902b7", "", "client-1"),
        ("53995c3f42cd8ad8", "00f067aa0ba902b7", "api-1"),
    ]


def test_the_query_socket_goes_when_the_collector_stops(short_dir: Path) -> None:
    async def scenario() -> None:
        async with collector(short_dir) as (_address, query):
            assert query.exists()

    asyncio.run(scenario())
    assert not (short_dir / "query.sock").exists()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        pytest.param({"op": "spans"}, "unknown operation 'spans'", id="unknown-op"),
        pytest.param({"op": "traces", "limit": 0}, "limit must be a whole number from 1 to 1000", id="limit-zero"),
        pytest.param({"op": "traces", "limit": True}, "limit must be a whole number", id="limit-bool"),
        pytest.param({"op": "traces", "trace_id": "XYZ"}, "trace_id must be 32 lower-case hex digits", id="bad-id"),
    ],
)
def test_bad_queries_are_answered_with_the_problem(request_: dict[str, Any], message: str) -> None:
    reply = answer(SpanStore(), request_)
    assert reply["ok"] is False and message in reply["error"]
