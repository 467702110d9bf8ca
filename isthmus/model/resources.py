"""Resource types as the control plane sees them, independent of where they came from.

These are what manifests parse into (`isthmus.model.manifests`) and what the
platforms store and watch. All are frozen: a change is a new object.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

ANNOTATION_INJECT = "isthmus.io/inject"
ANNOTATION_OPAQUE_PORTS = "config.isthmus.io/opaque-ports"
ANNOTATION_INBOUND_POLICY = "config.isthmus.io/default-inbound-policy"
INBOUND_POLICIES = ("all-authenticated", "all-unauthenticated")

Protocol = Literal["TCP", "UDP"]


@dataclass(frozen=True)
class ObjectMeta:
    name: str
    namespace: str = "default"
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


@dataclass(frozen=True)
class Namespace:
    meta: ObjectMeta
    kind: Literal["Namespace"] = "Namespace"


@dataclass(frozen=True)
class ServiceAccount:
    meta: ObjectMeta
    kind: Literal["ServiceAccount"] = "ServiceAccount"


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: Protocol = "TCP"


@dataclass(frozen=True)
class Container:
    name: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    image: str = ""


@dataclass(frozen=True)
class PodTemplate:
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    service_account: str
    containers: tuple[Container, ...]


@dataclass(frozen=True)
class Deployment:
    meta: ObjectMeta
    replicas: int
    selector: tuple[tuple[str, str], ...]
    template: PodTemplate
    kind: Literal["Deployment"] = "Deployment"


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    name: str = ""
    protocol: Protocol = "TCP"


@dataclass(frozen=True)
class Service:
    meta: ObjectMeta
    selector: tuple[tuple[str, str], ...]
    ports: tuple[ServicePort, ...]
    kind: Literal["Service"] = "Service"


@dataclass(frozen=True)
class Secret:
    """Named confidential data (a link's credential, for one). Never logged; `get` shows only its keys."""

    meta: ObjectMeta
    type: str = "Opaque"
    data: tuple[tuple[str, str], ...] = ()
    """(key, base64 of the value), sorted by key: Kubernetes' canonical form (stringData is folded in)."""
    kind: Literal["Secret"] = "Secret"

    def value(self, key: str) -> bytes | None:
        """The decoded value of `key`, or None when the Secret lacks it."""
        found = dict(self.data).get(key)
        return None if found is None else base64.b64decode(found)


Resource = Namespace | ServiceAccount | Deployment | Service | Secret


def resource_key(r: Resource) -> tuple[str, str, str]:
    """(kind, namespace, name): what identifies a resource within one cluster."""
    namespace = "" if isinstance(r, Namespace) else r.meta.namespace
    return (r.kind, namespace, r.meta.name)


@dataclass(frozen=True)
class Pod:
    """One running replica: a network namespace with an address, its app and (usually) a sidecar."""

    name: str
    namespace: str
    cluster: str
    ip: str
    labels: tuple[tuple[str, str], ...]
    annotations: tuple[tuple[str, str], ...]
    service_account: str
    deployment: str
    container_ports: tuple[ContainerPort, ...] = ()
    ready: bool = True

    @property
    def injected(self) -> bool:
        return dict(self.annotations).get(ANNOTATION_INJECT, "enabled") != "disabled"

    @property
    def opaque_ports(self) -> frozenset[int]:
        return parse_port_list(dict(self.annotations).get(ANNOTATION_OPAQUE_PORTS, ""))

    def resolve_port(self, target: int | str) -> int | None:
        """A Service targetPort (number or container port name) as a number on this pod."""
        if isinstance(target, int):
            return target
        for p in self.container_ports:
            if p.name == target:
                return p.container_port
        return None


@dataclass(frozen=True)
class ServiceAddress:
    """A Service with the virtual IP the platform gave it."""

    service: Service
    cluster_ip: str
    cluster: str = "local"

    @property
    def name(self) -> str:
        return self.service.meta.name

    @property
    def namespace(self) -> str:
        return self.service.meta.namespace


def parse_port_list(value: str) -> frozenset[int]:
    """ "6379,5432" or "8000-8002,9000" -> ports. Entries that are not ports are ignored
    here; manifest validation rejects them before they reach a running pod."""
    ports: set[int] = set()
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            continue
        if 0 < a <= b <= 65535:
            ports.update(range(a, b + 1))
    return frozenset(ports)


def selector_matches(selector: tuple[tuple[str, str], ...], labels: tuple[tuple[str, str], ...]) -> bool:
    """Kubernetes equality selector semantics; an empty selector selects nothing for Services."""
    if not selector:
        return False
    have = dict(labels)
    return all(have.get(k) == v for k, v in selector)


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    pod: str
    ready: bool = True
    opaque: bool = False
    meshed: bool = True
    service_account: str = "default"
    """The identity the endpoint's sidecar presents: spiffe://<trust domain>/ns/<ns>/sa/<this>."""


# A cluster traces its HTTP requests while it has a trace collector: a Service in
# TRACE_COLLECTOR_NAMESPACE labelled TRACE_COLLECTOR_LABEL "true", taking OTLP over gRPC on
# its port named TRACE_COLLECTOR_PORT_NAME (the `tracing` add-on applies one). Only that
# namespace counts, so nobody who can merely create a Service elsewhere receives the spans.
TRACE_COLLECTOR_NAMESPACE = "isthmus-system"
TRACE_COLLECTOR_LABEL = "isthmus.io/trace-collector"
TRACE_COLLECTOR_PORT_NAME = "otlp-grpc"


@dataclass(frozen=True)
class TracingSettings:
    """Where a cluster's sidecars send their spans: a Service taking OTLP over gRPC."""

    namespace: str
    service: str
    port: int
    """The Service port; the sidecars send to its endpoints' target port."""


def trace_collector(services: Iterable[Service]) -> TracingSettings | None:
    """The cluster's trace collector (see TRACE_COLLECTOR_LABEL), or None: tracing is off.
    Of several, the first by name; a labelled Service without an `otlp-grpc` port is none."""
    for svc in sorted(services, key=lambda s: s.meta.name):
        if svc.meta.namespace != TRACE_COLLECTOR_NAMESPACE or svc.meta.label(TRACE_COLLECTOR_LABEL) != "true":
            continue
        for port in svc.ports:
            if port.name == TRACE_COLLECTOR_PORT_NAME and port.protocol == "TCP":
                return TracingSettings(svc.meta.namespace, svc.meta.name, port.port)
    return None


@dataclass(frozen=True)
class ClusterSettings:
    """Per-cluster settings the proxies' config depends on."""

    name: str
    trust_domain: str = "cluster.local"
    detect_timeout_ms: int = 1000
    default_inbound_policy: str = "all-unauthenticated"
    """Whether clients outside the mesh may reach meshed pods in plaintext, unless a
    namespace or pod annotation says otherwise (`ANNOTATION_INBOUND_POLICY`)."""
    extra: tuple[tuple[str, str], ...] = field(default=())
    tracing: TracingSettings | None = None
    """Where the sidecars send spans; None (the default) traces nothing. The platform sets it
    from the cluster's Services (`trace_collector`)."""
