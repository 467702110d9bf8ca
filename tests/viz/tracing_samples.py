"""Spans and OTLP exports shaped as the sidecars send them, for the tracing tests."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from isthmus.viz.tracing.spans import Scalar, Span

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_795_827_766_000_000_000


def pod_tags(pod: str, deployment: str, cluster: str = "west") -> tuple[tuple[str, Scalar], ...]:
    return (
        ("isthmus.service_account", "default"),
        ("k8s.cluster.name", cluster),
        ("k8s.deployment.name", deployment),
        ("k8s.namespace.name", "shop"),
        ("k8s.node.name", f"{cluster}-node"),
        ("k8s.pod.name", pod),
    )


def span(
    span_id: str,
    parent: str = "",
    *,
    trace_id: str = TRACE,
    kind: str = "client",
    start_ms: float = 0,
    ms: float = 5,
    pod: str = "client-1",
    deployment: str = "client",
    cluster: str = "west",
    status: str = "200",
    url: str = "http://api.shop/x",
    error: bool = False,
) -> Span:
    attributes: dict[str, Scalar] = dict(pod_tags(pod, deployment, cluster))
    attributes.update({"http.method": "GET", "http.url": url, "http.status_code": status})
    if error:
        attributes["error"] = "true"
    start = T0 + int(start_ms * 1e6)
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name="egress api.shop" if kind == "client" else "ingress",
        kind=kind,
        start_ns=start,
        end_ns=start + int(ms * 1e6),
        status="unset",
        attributes=tuple(sorted(attributes.items())),
        resource=(("service.name", f"{deployment}.shop"),),
    )


def _kv(key: str, value: Scalar) -> common_pb2.KeyValue:
    if isinstance(value, bool):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    if isinstance(value, float):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(double_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def groups(resource_spans: trace_pb2.ResourceSpans) -> Any:
    """The groups of spans under either name (see isthmus.viz.tracing.spans._spans)."""
    if "scope_spans" in resource_spans.DESCRIPTOR.fields_by_name:
        return resource_spans.scope_spans
    return resource_spans.instrumentation_library_spans


def export(*spans: Span) -> trace_service_pb2.ExportTraceServiceRequest:
    """One OTLP export per reporting process (resource), as Envoy's tracer sends them."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    for s in spans:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.CopyFrom(resource_pb2.Resource(attributes=[_kv(k, v) for k, v in s.resource]))
        groups(resource_spans).add().spans.append(
            trace_pb2.Span(
                trace_id=bytes.fromhex(s.trace_id),
                span_id=bytes.fromhex(s.span_id),
                parent_span_id=bytes.fromhex(s.parent_span_id),
                name=s.name,
                kind={"server": 2, "client": 3}[s.kind],
                start_time_unix_nano=s.start_ns,
                end_time_unix_nano=s.end_ns,
                attributes=[_kv(k, v) for k, v in s.attributes],
            )
        )
    return request
