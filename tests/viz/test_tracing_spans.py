"""OTLP exports into span records and back through the query socket's JSON, and the bounded store."""

from __future__ import annotations

import pytest
from opentelemetry.proto.common.v1 import common_pb2

from isthmus.viz.tracing.spans import Span, spans_of
from isthmus.viz.tracing.store import SpanStore
from tests.viz.tracing_samples import TRACE, export, groups, span


def test_an_export_becomes_the_spans_it_carries() -> None:
    sent = [span("00f067aa0ba902b7"), span("1111111111111111", "00f067aa0ba902b7", kind="server", pod="api-1")]
    assert spans_of(export(*sent)) == sent


def test_attribute_values_of_every_kind_are_kept_as_scalars() -> None:
    request = export(span("00f067aa0ba902b7"))
    raw = groups(request.resource_spans[0])[0].spans[0]
    raw.attributes.extend(
        [
            common_pb2.KeyValue(key="n", value=common_pb2.AnyValue(int_value=7)),
            common_pb2.KeyValue(key="b", value=common_pb2.AnyValue(bool_value=True)),
            common_pb2.KeyValue(key="f", value=common_pb2.AnyValue(double_value=0.5)),
            common_pb2.KeyValue(key="raw", value=common_pb2.AnyValue(bytes_value=b"\x01\xff")),
            common_pb2.KeyValue(
                key="list",
                value=common_pb2.AnyValue(
                    array_value=common_pb2.ArrayValue(
                        values=[common_pb2.AnyValue(string_value="a"), common_pb2.AnyValue(int_value=2)]
                    )
                ),
            ),
        ]
    )
    (got,) = spans_of(request)
    assert (got.attribute("n"), got.attribute("b"), got.attribute("f")) == (7, True, 0.5)
    assert (got.attribute("raw"), got.attribute("list")) == ("01ff", "a,2")


def test_spans_with_malformed_ids_are_left_out() -> None:
    request = export(span("00f067aa0ba902b7"), span("2222222222222222"))
    groups(request.resource_spans[1])[0].spans[0].trace_id = b"\x00" * 16
    assert [s.span_id for s in spans_of(request)] == ["00f067aa0ba902b7"]


def test_json_round_trip_and_bad_json_is_refused() -> None:
    s = span("00f067aa0ba902b7", "1234567812345678", error=True)
    assert Span.from_json(s.to_json()) == s
    with pytest.raises(ValueError, match="hex digits"):
        Span.from_json({**s.to_json(), "trace_id": "XYZ"})
    with pytest.raises(KeyError):
        Span.from_json({"trace_id": TRACE})


def test_the_store_keeps_the_most_recently_active_traces_within_its_bound() -> None:
    store = SpanStore(max_spans=4)
    a = [span("a000000000000001", trace_id="a" * 32), span("a000000000000002", trace_id="a" * 32)]
    b = [span("b000000000000001", trace_id="b" * 32), span("b000000000000002", trace_id="b" * 32)]
    store.add(a)
    store.add(b)
    store.add(a[:1])  # a span again: a is the latest active, and nothing is counted twice
    assert store.stats().spans == 4 and store.stats().evicted == 0
    assert [t[0].trace_id for t in store.recent(10)] == ["a" * 32, "b" * 32]
    c = [span("c000000000000001", trace_id="c" * 32)]
    store.add(c)  # over the bound: the trace quiet longest (b) goes, whole
    assert [t[0].trace_id for t in store.recent(10)] == ["c" * 32, "a" * 32]
    assert store.stats().spans == 3 and store.stats().evicted == 2 and store.stats().received == 6
    assert store.recent(1) == [c]
    assert store.recent(10, "a" * 32) == [a] and store.recent(10, "b" * 32) == []


def test_one_trace_larger_than_the_store_keeps_its_latest_spans() -> None:
    store = SpanStore(max_spans=3)
    spans = [span(f"{i:016x}", start_ms=i) for i in range(1, 6)]
    store.add(spans)
    assert sorted(s.span_id for s in store.recent(1)[0]) == [f"{i:016x}" for i in (3, 4, 5)]
    with pytest.raises(ValueError, match="at least one span"):
        SpanStore(0)
