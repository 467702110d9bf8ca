"""The indexed view of one cluster that the translation stages read.

A `ClusterState` is immutable; the platform publishes a new one on every
change, so readers never see a half-applied update.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from isthmus.model.resources import (
    ANNOTATION_INBOUND_POLICY,
    INBOUND_POLICIES,
    ClusterSettings,
    Endpoint,
    Pod,
    ServiceAddress,
    ServicePort,
    selector_matches,
)


@dataclass(frozen=True)
class ClusterState:
    settings: ClusterSettings
    services: tuple[ServiceAddress, ...] = ()
    pods: tuple[Pod, ...] = ()
    namespace_annotations: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    """(namespace, its annotations), for settings a namespace can make for its pods."""

    @cached_property
    def _pods_by_ns(self) -> dict[str, tuple[Pod, ...]]:
        out: dict[str, list[Pod]] = {}
        for p in self.pods:
            out.setdefault(p.namespace, []).append(p)
        return {k: tuple(v) for k, v in out.items()}

    def pod(self, namespace: str, name: str) -> Pod | None:
        for p in self._pods_by_ns.get(namespace, ()):
            if p.name == name:
                return p
        return None

    def service(self, namespace: str, name: str) -> ServiceAddress | None:
        for s in self.services:
            if s.namespace == namespace and s.name == name:
                return s
        return None

    def selected_pods(self, svc: ServiceAddress) -> tuple[Pod, ...]:
        return tuple(
            p for p in self._pods_by_ns.get(svc.namespace, ()) if selector_matches(svc.service.selector, p.labels)
        )

    def endpoints(self, svc: ServiceAddress, port: ServicePort) -> tuple[Endpoint, ...]:
        """Where traffic for one service port goes: each selected pod that has the target port."""
        out: list[Endpoint] = []
        for p in self.selected_pods(svc):
            target = p.resolve_port(port.target_port)
            if target is None:
                continue
            out.append(
                Endpoint(
                    ip=p.ip,
                    port=target,
                    pod=p.name,
                    ready=p.ready,
                    opaque=target in p.opaque_ports,
                    meshed=p.injected,
                    service_account=p.service_account,
                )
            )
        return tuple(sorted(out, key=lambda e: (e.ip, e.port)))

    def port_is_opaque(self, svc: ServiceAddress, port: ServicePort) -> bool:
        """A service port is opaque when any pod behind it marks its target port opaque."""
        return any(e.opaque for e in self.endpoints(svc, port))

    def inbound_policy(self, pod: Pod) -> str:
        """The pod's annotation, else its namespace's, else the cluster's default."""
        for found in (pod.annotations, dict(self.namespace_annotations).get(pod.namespace, ())):
            value = dict(found).get(ANNOTATION_INBOUND_POLICY)
            if value in INBOUND_POLICIES:
                return value
        return self.settings.default_inbound_policy
