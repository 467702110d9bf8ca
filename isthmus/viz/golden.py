"""Golden metrics per deployment, pod and service, from the pods' traffic over a window. Pure.

Deployments and pods are measured as servers: what their own sidecars counted on
the way in (from meshed clients and, where let in, clients outside the mesh).
Services are measured as their clients saw them: what every meshed pod's sidecar
counted on the way out to the service, which includes the requests that found no
healthy endpoint and the hop between the two sidecars. Rates are over the span the
readings cover, so a pod that came or went during the window counts for the part
it was there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from isthmus.model.index import ClusterState
from isthmus.model.resources import Pod
from isthmus.viz.history import PodWindow, Window
from isthmus.viz.latency import Histogram
from isthmus.viz.traffic import FlowKey, Traffic, total

Kind = Literal["deploy", "pod", "svc"]
View = Literal["server", "client"]
VIEWS: dict[Kind, View] = {"deploy": "server", "pod": "server", "svc": "client"}


@dataclass(frozen=True)
class Figures:
    """Golden metrics of one row over `seconds`."""

    seconds: float
    traffic: Traffic

    @property
    def rps(self) -> float:
        """HTTP responses per second."""
        return self.traffic.responses / self.seconds if self.seconds > 0 else 0.0

    @property
    def success(self) -> float | None:
        """Share of HTTP responses that were not 5xx; None without responses."""
        t = self.traffic
        return (t.responses - t.failures) / t.responses if t.responses else None

    @property
    def latency(self) -> Histogram:
        return self.traffic.latency

    def latency_ms(self, q: float) -> float | None:
        return self.traffic.latency.quantile(q)

    def bytes_per_second(self, count: int) -> float:
        return count / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Unscraped:
    pod: str
    namespace: str
    reason: str


@dataclass(frozen=True)
class Row:
    namespace: str
    name: str
    meshed: int
    """Ready pods with a sidecar."""
    pods: int
    figures: Figures | None
    """None when nothing could be measured: no pod with a sidecar read, or no window yet."""
    unscraped: tuple[Unscraped, ...] = ()
    """Its pods whose sidecars could not be read (deploy, pod); their traffic is missing."""


def _meshed(pods: Iterable[Pod]) -> tuple[int, int]:
    listed = list(pods)
    return sum(1 for p in listed if p.injected and p.ready), len(listed)


def _figures(window: Window, windows: Sequence[PodWindow], keep: Callable[[FlowKey], bool]) -> Figures | None:
    read = [w for w in windows if w.error is None]
    if window.seconds <= 0 or not read:
        return None
    return Figures(window.seconds, total(t for w in read for key, t in w.flows.items() if keep(key)))


def _unscraped(windows: Iterable[PodWindow]) -> tuple[Unscraped, ...]:
    return tuple(Unscraped(w.pod.name, w.pod.namespace, w.error) for w in windows if w.error is not None)


def _inbound(key: FlowKey) -> bool:
    return key.direction == "inbound"


def deployment_rows(state: ClusterState, window: Window, deployments: Iterable[tuple[str, str]]) -> list[Row]:
    """One row per (namespace, name) deployment: its pods as servers, gone pods included."""
    rows = []
    for namespace, name in sorted(set(deployments)):
        pods = [p for p in state.pods if p.namespace == namespace and p.deployment == name]
        windows = [w for w in window.pods if w.pod.namespace == namespace and w.deployment == name]
        meshed, count = _meshed(pods)
        rows.append(Row(namespace, name, meshed, count, _figures(window, windows, _inbound), _unscraped(windows)))
    return rows


def pod_rows(state: ClusterState, window: Window, pods: Iterable[Pod]) -> list[Row]:
    """One row per pod that exists now, as a server."""
    by_pod = {(w.pod.namespace, w.pod.name): w for w in window.pods}
    rows = []
    for pod in sorted(pods, key=lambda p: (p.namespace, p.name)):
        found = by_pod.get((pod.namespace, pod.name))
        windows = [found] if found else []
        meshed, count = _meshed([pod])
        rows.append(
            Row(pod.namespace, pod.name, meshed, count, _figures(window, windows, _inbound), _unscraped(windows))
        )
    return rows


def service_rows(state: ClusterState, window: Window, services: Iterable[tuple[str, str]]) -> list[Row]:
    """One row per (namespace, name) service: what every meshed client sent to it."""
    rows = []
    for namespace, name in sorted(set(services)):
        svc = state.service(namespace, name)
        meshed, count = _meshed(state.selected_pods(svc) if svc else ())

        def to_it(key: FlowKey, namespace: str = namespace, name: str = name) -> bool:
            return key.direction == "outbound" and (key.namespace, key.service) == (namespace, name)

        rows.append(Row(namespace, name, meshed, count, _figures(window, window.pods, to_it)))
    return rows


def unscraped(window: Window) -> tuple[Unscraped, ...]:
    """Every sidecar the latest cycle could not read."""
    return _unscraped(window.pods)
