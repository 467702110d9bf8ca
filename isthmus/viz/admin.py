"""Reading sidecars' Envoy admin APIs: the I/O edge everything in viz stands on, and a fake of it.

The admin API listens on each pod's loopback only (`isthmus.model.mesh.ADMIN_PORT`),
so how to reach it depends on the platform: `admin_local.LocalAdminScraper` enters
the local platform's pod namespaces. Callers ask for several pods and admin paths
at once, so an implementation can fetch them in parallel in one go; a sidecar
that cannot be read comes back with the reason, never as an exception, so one
broken pod never hides the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, order=True)
class PodRef:
    """Which pod's sidecar."""

    cluster: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class AdminReply:
    """What one sidecar answered: a body per admin path asked for, or why it could not be read."""

    pod: PodRef
    bodies: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    """Set when any path failed; `bodies` is then empty, so readers never mix a partial scrape in."""

    @property
    def ok(self) -> bool:
        return self.error is None


class AdminScraper(Protocol):
    def scrape(self, pods: Sequence[PodRef], paths: Sequence[str]) -> dict[PodRef, AdminReply]:
        """GET every path (with its query string) from every pod's admin API; one reply per pod."""
        ...


class StaticAdminScraper:
    """A fake sidecar fleet for tests: canned bodies per pod and path, and canned failures.

    A pod it knows nothing of, or a path it has no body for, fails the way a real
    sidecar that is missing or answers 404 would.
    """

    def __init__(self, bodies: Mapping[PodRef, Mapping[str, str]], errors: Mapping[PodRef, str] | None = None) -> None:
        self.bodies = {pod: dict(paths) for pod, paths in bodies.items()}
        self.errors = dict(errors or {})
        self.asked: list[tuple[tuple[PodRef, ...], tuple[str, ...]]] = []

    def scrape(self, pods: Sequence[PodRef], paths: Sequence[str]) -> dict[PodRef, AdminReply]:
        self.asked.append((tuple(pods), tuple(paths)))
        return {pod: self._reply(pod, paths) for pod in pods}

    def _reply(self, pod: PodRef, paths: Iterable[str]) -> AdminReply:
        if pod in self.errors:
            return AdminReply(pod, error=self.errors[pod])
        known = self.bodies.get(pod)
        if known is None:
            return AdminReply(pod, error="connection refused (no sidecar listens on its admin port)")
        for path in paths:
            if path not in known:
                return AdminReply(pod, error=f"GET {path} answered 404")
        return AdminReply(pod, {path: known[path] for path in paths})
