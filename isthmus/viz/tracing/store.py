"""The collector's memory (pure): the spans of the most recently active traces, never more than a set number.

A trace is "active" when a span of it arrives; when the store is full, the traces that
have been quiet longest go first, whole, so what is kept are complete recent traces
rather than fragments of many. Nothing is written to disk: a restarted collector
starts empty, as the `tracing` add-on documents.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from isthmus.viz.tracing.spans import Span

DEFAULT_MAX_SPANS = 10_000


@dataclass(frozen=True)
class StoreStats:
    spans: int
    traces: int
    received: int
    """Spans taken in since the collector started."""
    evicted: int
    """Spans let go to stay within the bound."""


class SpanStore:
    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        if max_spans < 1:
            raise ValueError(f"the store must hold at least one span, not {max_spans}")
        self.max_spans = max_spans
        # trace id -> span id -> span; the most recently active trace last.
        self._traces: OrderedDict[str, dict[str, Span]] = OrderedDict()
        self._count = 0
        self._received = 0
        self._evicted = 0

    def add(self, spans: Iterable[Span]) -> None:
        for span in spans:
            self._received += 1
            trace = self._traces.setdefault(span.trace_id, {})
            self._traces.move_to_end(span.trace_id)
            if span.span_id not in trace:
                self._count += 1
            trace[span.span_id] = span
        self._shrink()

    def _shrink(self) -> None:
        while self._count > self.max_spans:
            trace_id, trace = next(iter(self._traces.items()))
            if len(self._traces) > 1:
                del self._traces[trace_id]
                self._count -= len(trace)
                self._evicted += len(trace)
                continue
            # One trace larger than the whole store: keep its latest spans.
            for span in sorted(trace.values(), key=lambda s: s.end_ns)[: self._count - self.max_spans]:
                del trace[span.span_id]
                self._count -= 1
                self._evicted += 1

    def recent(self, limit: int, trace_id: str | None = None) -> list[list[Span]]:
        """The spans of the `limit` most recently active traces (newest first), or of one trace."""
        if trace_id is not None:
            found = self._traces.get(trace_id)
            return [list(found.values())] if found else []
        out: list[list[Span]] = []
        for spans in reversed(self._traces.values()):
            if len(out) >= limit:
                break
            out.append(list(spans.values()))
        return out

    def stats(self) -> StoreStats:
        return StoreStats(self._count, len(self._traces), self._received, self._evicted)
