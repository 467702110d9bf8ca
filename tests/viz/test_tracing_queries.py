"""Joining spans into traces (across clusters too), their trees, and `isthmus traces`' output and options."""

from __future__ import annotations

import argparse
import json

import pytest

from isthmus.cli.errors import CliError
from isthmus.cli.traces import Fetched, TracesOptions, render_json, render_table
from isthmus.viz.tracing.queries import assemble
from tests.viz.test_edges_cli import check_golden
from tests.viz.tracing_samples import TRACE, span

CLIENT_SPAN = "00f067aa0ba902b7"
SERVER_SPAN = "53995c3f42cd8ad8"


def across() -> list[object]:
    """west's client calls east's api: each half as its own cluster's collector has it."""
    west = [span(CLIENT_SPAN, ms=8)]
    east = [
        span(SERVER_SPAN, CLIENT_SPAN, kind="server", start_ms=3, ms=2, pod="api-1", deployment="api", cluster="east")
    ]
    return [*west, *east]


def test_spans_from_two_collectors_join_into_one_trace_with_the_crossing_marked() -> None:
    (trace,) = assemble(across())  # type: ignore[arg-type]
    assert trace.trace_id == TRACE and trace.clusters == ("east", "west")
    client, server = trace.spans
    assert (client.span.span_id, client.depth, client.crossed_from) == (CLIENT_SPAN, 0, None)
    assert (server.span.span_id, server.depth, server.crossed_from) == (SERVER_SPAN, 1, "west")
    assert trace.duration_ns == 8_000_000


def test_a_tree_puts_children_under_their_parent_earliest_first_and_keeps_orphans_and_cycles() -> None:
    spans = [
        span("0000000000000003", "0000000000000001", start_ms=5),
        span("0000000000000002", "0000000000000001", start_ms=1),
        span("0000000000000004", "0000000000000002", start_ms=2),
        span("0000000000000001", "feedfeedfeedfeed"),  # its parent is outside the mesh: a root
        span("0000000000000005", "0000000000000006", trace_id="c" * 32),  # a cycle: shown anyway
        span("0000000000000006", "0000000000000005", trace_id="c" * 32, start_ms=1),
        span("0000000000000002", "0000000000000001", start_ms=1),  # reported twice: once
    ]
    traces = {t.trace_id: t for t in assemble(spans)}
    tree = [(s.span.span_id[-1], s.depth) for s in traces[TRACE].spans]
    assert tree == [("1", 0), ("2", 1), ("4", 2), ("3", 1)]
    assert sorted(s.span.span_id for s in traces["c" * 32].spans) == ["0000000000000005", "0000000000000006"]


def test_the_latest_traces_come_first_and_the_limit_holds() -> None:
    spans = [span(f"{i:016x}", trace_id=f"{i:032x}", start_ms=i) for i in range(1, 6)]
    assert [t.trace_id[-1] for t in assemble(spans, limit=2)] == ["5", "4"]


def test_the_table_shows_each_trace_as_a_tree_of_its_spans() -> None:
    spans = [*across(), span("9" * 16, trace_id="d" * 32, start_ms=-1000, status="503", error=True)]
    check_golden("tracing_traces.txt", render_table(assemble(spans)))  # type: ignore[arg-type]
    assert "no traces yet" in render_table([])


def test_json_carries_each_span_with_its_pod_metadata() -> None:
    fetched = Fetched(tuple(across()), ("east", "west"), {"north": "nothing is listening"})  # type: ignore[arg-type]
    out = json.loads(render_json(assemble(fetched.spans), fetched))
    assert out["clusters"] == ["east", "west"] and out["unreachable"] == {"north": "nothing is listening"}
    (trace,) = out["traces"]
    server = trace["spans"][1]
    assert {k: server[k] for k in ("pod", "namespace", "deployment", "service_account", "cluster", "node")} == {
        "pod": "api-1",
        "namespace": "shop",
        "deployment": "api",
        "service_account": "default",
        "cluster": "east",
        "node": "east-node",
    }
    assert (server["direction"], server["depth"], server["parent_span_id"], server["duration_ms"]) == (
        "inbound",
        1,
        CLIENT_SPAN,
        2.0,
    )


def _args(**given: object) -> argparse.Namespace:
    return argparse.Namespace(**{"cluster": None, "limit": 10, "trace": None, "output": "table", **given})


@pytest.mark.parametrize(
    ("given", "message"),
    [
        pytest.param({"limit": 0}, "--limit must be from 1 to 1000, got 0", id="limit-too-small"),
        pytest.param({"limit": 1001}, "--limit must be from 1 to 1000", id="limit-too-large"),
        pytest.param({"trace": "abc"}, "--trace must be a trace id of 32 hex digits", id="short-trace-id"),
        pytest.param({"trace": "g" * 32}, "--trace must be a trace id of 32 hex digits", id="not-hex"),
    ],
)
def test_bad_options_get_one_clear_error(given: dict[str, object], message: str) -> None:
    with pytest.raises(CliError, match=message):
        TracesOptions.from_args(_args(**given))


def test_a_trace_id_may_be_given_in_capitals() -> None:
    assert TracesOptions.from_args(_args(trace=TRACE.upper())).trace_id == TRACE
