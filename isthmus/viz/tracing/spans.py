"""Spans as plain records (pure): from OTLP messages, and to and from the JSON the query socket speaks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

Scalar = str | int | float | bool

# OTLP's Span.SpanKind and Status.StatusCode, by number, as the CLI shows them.
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUSES = {0: "unset", 1: "ok", 2: "error"}


@dataclass(frozen=True)
class Span:
    """One finished span, with its attributes and those of the process that reported it."""

    trace_id: str
    """32 lower-case hex digits."""
    span_id: str
    """16 lower-case hex digits."""
    parent_span_id: str
    """"" for a span that started its trace."""
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    attributes: tuple[tuple[str, Scalar], ...]
    resource: tuple[tuple[str, Scalar], ...]
    """The reporting process's attributes (service.name, ...)."""

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    def attribute(self, key: str) -> Scalar | None:
        """The span's own attribute, else the process's."""
        for k, v in self.attributes:
            if k == key:
                return v
        for k, v in self.resource:
            if k == key:
                return v
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_unix_nano": self.start_ns,
            "end_unix_nano": self.end_ns,
            "status": self.status,
            "attributes": dict(self.attributes),
            "resource": dict(self.resource),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Span:
        """Raises ValueError (or KeyError/TypeError) for data that is no span."""
        return cls(
            trace_id=_hex(data["trace_id"], 32),
            span_id=_hex(data["span_id"], 16),
            parent_span_id=_hex(data["parent_span_id"], 16) if data["parent_span_id"] else "",
            name=str(data["name"]),
            kind=str(data["kind"]),
            start_ns=int(data["start_unix_nano"]),
            end_ns=int(data["end_unix_nano"]),
            status=str(data["status"]),
            attributes=_pairs(data["attributes"]),
            resource=_pairs(data["resource"]),
        )


def _hex(value: object, digits: int) -> str:
    text = str(value)
    if len(text) != digits or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{text!r} is not {digits} lower-case hex digits")
    return text


def _pairs(values: object) -> tuple[tuple[str, Scalar], ...]:
    if not isinstance(values, Mapping):
        raise ValueError("attributes must be an object")
    return tuple(sorted((str(k), v if isinstance(v, str | int | float | bool) else str(v)) for k, v in values.items()))


def spans_of(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    """Every span of an OTLP export; spans with malformed ids (not 16/8 bytes) are left out."""
    out: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for span in _spans(resource_spans):
            if len(span.trace_id) != 16 or len(span.span_id) != 8 or span.trace_id == bytes(16):
                continue
            out.append(
                Span(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex() if len(span.parent_span_id) == 8 else "",
                    name=span.name,
                    kind=KINDS.get(span.kind, "unspecified"),
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status=STATUSES.get(span.status.code, "unset"),
                    attributes=_attributes(span.attributes),
                    resource=resource,
                )
            )
    return out


def _spans(resource_spans: trace_pb2.ResourceSpans) -> Iterator[trace_pb2.Span]:
    # xds-protos ships an older copy of these messages under the same module names, and
    # whichever package was installed last is what imports. The group of spans was renamed
    # (instrumentation library -> scope) with the same field number, so both read the wire alike.
    groups = (
        resource_spans.scope_spans
        if "scope_spans" in resource_spans.DESCRIPTOR.fields_by_name
        else resource_spans.instrumentation_library_spans
    )
    for group in groups:
        yield from group.spans


def _attributes(values: Any) -> tuple[tuple[str, Scalar], ...]:
    return tuple(sorted((kv.key, _value(kv.value)) for kv in values))


def _value(value: common_pb2.AnyValue) -> Scalar:
    which = value.WhichOneof("value")
    match which:
        case "string_value" | "bool_value" | "int_value" | "double_value":
            found: Scalar = getattr(value, which)
            return found
        case "bytes_value":
            return value.bytes_value.hex()
        case "array_value":
            return ",".join(str(_value(v)) for v in value.array_value.values)
        case "kvlist_value":
            return ",".join(f"{kv.key}={_value(kv.value)}" for kv in value.kvlist_value.values)
        case _:
            return ""
