"""Traces from spans (pure): joined across collectors, ordered as trees, described for people.

Each cluster's collector holds the spans of its own sidecars, so a request that
crossed from west to east has its caller's span in west's collector and its
callee's in east's; joining them by trace id makes the one trace. The gateway in
between forwards the caller's mTLS bytes without opening them, so it reports no
span: a child reported by another cluster than its parent marks that hop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from isthmus.viz.tracing.spans import Span

# Span attributes the sidecars set (isthmus.xds.translate.tracing.SPAN_TAGS and Envoy's own).
POD = "k8s.pod.name"
NAMESPACE = "k8s.namespace.name"
DEPLOYMENT = "k8s.deployment.name"
CLUSTER = "k8s.cluster.name"
NODE = "k8s.node.name"
SERVICE_ACCOUNT = "isthmus.service_account"
SERVICE_NAME = "service.name"
DIRECTIONS = {"client": "outbound", "server": "inbound"}


@dataclass(frozen=True)
class TraceSpan:
    span: Span
    depth: int
    """0 for a root: a span without a parent, or whose parent no collector has."""
    crossed_from: str | None = None
    """The parent's cluster, when it is not this span's: the request came through this cluster's gateway."""


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: tuple[TraceSpan, ...]
    """Depth first: each span followed by its children, earliest first."""

    @property
    def start_ns(self) -> int:
        return min(s.span.start_ns for s in self.spans)

    @property
    def end_ns(self) -> int:
        return max(s.span.end_ns for s in self.spans)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def clusters(self) -> tuple[str, ...]:
        return tuple(sorted({c for s in self.spans if (c := cluster_of(s.span))}))


def assemble(spans: Iterable[Span], limit: int | None = None) -> list[Trace]:
    """Every trace among `spans` (a span reported twice counts once), the latest started first."""
    by_trace: dict[str, dict[str, Span]] = {}
    for s in spans:
        by_trace.setdefault(s.trace_id, {})[s.span_id] = s
    traces = [Trace(trace_id, _tree(list(found.values()))) for trace_id, found in by_trace.items()]
    traces.sort(key=lambda t: (-t.start_ns, t.trace_id))
    return traces if limit is None else traces[:limit]


def _tree(spans: Sequence[Span]) -> tuple[TraceSpan, ...]:
    ids = {s.span_id for s in spans}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for s in spans:
        if s.parent_span_id and s.parent_span_id in ids and s.parent_span_id != s.span_id:
            children.setdefault(s.parent_span_id, []).append(s)
        else:
            roots.append(s)
    out: list[TraceSpan] = []
    seen: set[str] = set()

    def visit(s: Span, depth: int, parent: Span | None) -> None:
        if s.span_id in seen:  # a cycle of parents: malformed, shown once
            return
        seen.add(s.span_id)
        here, there = cluster_of(s), cluster_of(parent) if parent else None
        out.append(TraceSpan(s, depth, there if there and here and there != here else None))
        for child in sorted(children.get(s.span_id, []), key=_order):
            visit(child, depth + 1, s)

    for root in sorted(roots, key=_order):
        visit(root, 0, None)
    # Spans only reachable through a cycle have no root; keep them visible all the same.
    for s in sorted(spans, key=_order):
        visit(s, 0, None)
    return tuple(out)


def _order(s: Span) -> tuple[int, str]:
    return (s.start_ns, s.span_id)


def _text(span: Span, key: str) -> str:
    value = span.attribute(key)
    return "" if value is None else str(value)


def cluster_of(span: Span) -> str:
    return _text(span, CLUSTER)


def pod_of(span: Span) -> str:
    return _text(span, POD)


def service_of(span: Span) -> str:
    """The workload that reported the span: the process's service.name (<deployment>.<namespace>)."""
    return _text(span, SERVICE_NAME) or ".".join(p for p in (_text(span, DEPLOYMENT), _text(span, NAMESPACE)) if p)


def direction_of(span: Span) -> str:
    return DIRECTIONS.get(span.kind, span.kind)


def http_status_of(span: Span) -> str:
    return _text(span, "http.status_code") or _text(span, "grpc.status_code")


def failed(span: Span) -> bool:
    """An error as Envoy reports one: the span's status, or its `error` tag (5xx, reset, no upstream)."""
    return span.status == "error" or _text(span, "error").lower() == "true"


def request_of(span: Span) -> str:
    """ "GET http://api.shop/x", or the span's name where it says no more."""
    method, url = _text(span, "http.method"), _text(span, "http.url")
    return f"{method} {url}".strip() or span.name


def span_json(ts: TraceSpan) -> dict[str, object]:
    """A span for scripts: as the collector reported it, with where it sits and who sent it."""
    s = ts.span
    return {
        **s.to_json(),
        "depth": ts.depth,
        "direction": direction_of(s),
        "service": service_of(s),
        "pod": pod_of(s),
        "namespace": _text(s, NAMESPACE),
        "deployment": _text(s, DEPLOYMENT),
        "service_account": _text(s, SERVICE_ACCOUNT),
        "cluster": cluster_of(s),
        "node": _text(s, NODE),
        "duration_ms": round(s.duration_ns / 1e6, 3),
        "http_status": http_status_of(s) or None,
        "error": failed(s),
        "crossed_from": ts.crossed_from,
    }


def trace_json(t: Trace) -> dict[str, object]:
    return {
        "trace_id": t.trace_id,
        "start_unix_nano": t.start_ns,
        "duration_ms": round(t.duration_ns / 1e6, 3),
        "clusters": list(t.clusters),
        "spans": [span_json(s) for s in t.spans],
    }
