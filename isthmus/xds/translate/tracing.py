"""Tracing: what a sidecar adds to its config while its cluster has a trace collector.

Every HTTP connection manager of the sidecar (outbound and inbound) gets Envoy's
OpenTelemetry tracer: one span per request in each direction, W3C trace context
(`traceparent`) read from the request or started here, and passed on upstream, so the
caller's and the callee's sidecars join one trace, across clusters too (the gateway
carries the header inside the caller's own mTLS session). Spans go over OTLP/gRPC to
the collector's endpoints, through a cluster of their own.

Each span is tagged with the pod it comes from. The tags are read from the Envoy
process's environment, which the platform gives every sidecar (`SPAN_TAGS`), so the
config is the same for every pod: the outbound half stays shared by all of them.

With no collector (`ClusterSettings.tracing` None) nothing at all changes: `traced`
returns what it was given and `collector` adds nothing.
"""

from __future__ import annotations

from envoy.config.core.v3 import extension_pb2, grpc_service_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.trace.v3 import http_tracer_pb2, opentelemetry_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.tracers.opentelemetry.resource_detectors.v3 import environment_resource_detector_pb2
from envoy.type.tracing.v3 import custom_tag_pb2
from envoy.type.v3 import percent_pb2

from isthmus.model.index import ClusterState
from isthmus.model.resources import Endpoint, TracingSettings
from isthmus.xds.translate.chains import HCM_FILTER
from isthmus.xds.translate.clusters import eds_cluster, load_assignment
from isthmus.xds.translate.fragments import Resources, millis, pack

COLLECTOR_CLUSTER = "isthmus-tracing"
TRACER = "envoy.tracers.opentelemetry"
ENVIRONMENT_DETECTOR = "envoy.tracers.opentelemetry.resource_detectors.environment"
# Reported when the environment names no service (OTEL_RESOURCE_ATTRIBUTES, which the
# platform sets to service.name=<deployment>.<namespace>).
DEFAULT_SERVICE_NAME = "isthmus-proxy"
EXPORT_TIMEOUT_MS = 2000

# Span attribute <- environment variable of the sidecar. The names follow OpenTelemetry's
# Kubernetes conventions where there is one; the platform sets the variables per pod.
SPAN_TAGS: tuple[tuple[str, str], ...] = (
    ("k8s.pod.name", "POD_NAME"),
    ("k8s.namespace.name", "POD_NAMESPACE"),
    ("k8s.deployment.name", "ISTHMUS_DEPLOYMENT"),
    ("k8s.cluster.name", "ISTHMUS_CLUSTER"),
    ("k8s.node.name", "ISTHMUS_NODE"),
    ("isthmus.service_account", "ISTHMUS_SERVICE_ACCOUNT"),
)


def tracing_config() -> hcm.HttpConnectionManager.Tracing:
    """The `tracing` block every HTTP connection manager of a traced sidecar carries."""
    tracer = opentelemetry_pb2.OpenTelemetryConfig(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=COLLECTOR_CLUSTER),
            timeout=millis(EXPORT_TIMEOUT_MS),
        ),
        service_name=DEFAULT_SERVICE_NAME,
        resource_detectors=[
            extension_pb2.TypedExtensionConfig(
                name=ENVIRONMENT_DETECTOR,
                typed_config=pack(environment_resource_detector_pb2.EnvironmentResourceDetectorConfig()),
            )
        ],
    )
    return hcm.HttpConnectionManager.Tracing(
        # Every request that arrives without a sampling decision starts a sampled trace;
        # one that carries a decision (traceparent's flags) keeps it.
        random_sampling=percent_pb2.Percent(value=100.0),
        custom_tags=[
            custom_tag_pb2.CustomTag(tag=tag, environment=custom_tag_pb2.CustomTag.Environment(name=variable))
            for tag, variable in SPAN_TAGS
        ],
        provider=http_tracer_pb2.Tracing.Http(name=TRACER, typed_config=pack(tracer)),
    )


def traced(state: ClusterState, part: Resources) -> Resources:
    """`part` with tracing in each HTTP connection manager of its listeners; `part` itself when
    the cluster traces nothing. Never changes `part`'s messages (snapshots share them)."""
    if state.settings.tracing is None:
        return part
    block = tracing_config()
    return Resources(
        listeners=[_with_tracing(lst, block) for lst in part.listeners],
        clusters=part.clusters,
        routes=part.routes,
        endpoints=part.endpoints,
    )


def collector(state: ClusterState) -> Resources:
    """The cluster the spans go out by, and its endpoints: the collector Service's ready pods,
    reached directly (the sidecar's own sockets pass the pod's redirect), in plaintext HTTP/2:
    the collector runs without a sidecar, so that its own traffic is never traced."""
    settings = state.settings.tracing
    if settings is None:
        return Resources()
    cluster = eds_cluster(COLLECTOR_CLUSTER, COLLECTOR_CLUSTER, "http2", COLLECTOR_CLUSTER)
    return Resources(
        clusters=[cluster],
        endpoints=[load_assignment(COLLECTOR_CLUSTER, _endpoints(state, settings), lambda _: None)],
    )


def _endpoints(state: ClusterState, settings: TracingSettings) -> list[Endpoint]:
    svc = state.service(settings.namespace, settings.service)
    if svc is None:
        return []
    return [e for p in svc.service.ports if p.port == settings.port for e in state.endpoints(svc, p)]


def _with_tracing(listener: listener_pb2.Listener, block: hcm.HttpConnectionManager.Tracing) -> listener_pb2.Listener:
    chains = [*listener.filter_chains, listener.default_filter_chain]
    if not any(f.name == HCM_FILTER for chain in chains for f in chain.filters):
        return listener
    out = listener_pb2.Listener()
    out.CopyFrom(listener)
    for chain in [*out.filter_chains, out.default_filter_chain]:
        for f in chain.filters:
            if f.name != HCM_FILTER:
                continue
            manager = hcm.HttpConnectionManager()
            f.typed_config.Unpack(manager)
            manager.tracing.CopyFrom(block)
            f.typed_config.Pack(manager)
    return out
