"""One cluster of the local platform: its desired objects, its pods, and the state it publishes.

The reconciler turns Deployments into pods and Services into virtual IPs, and
publishes an immutable `ClusterState` to its watchers (the control plane) on
every change. Watch queues hold only the latest state, so a slow watcher
never blocks the cluster and never sees stale intermediate states.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import string
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from typing import Any

from isthmus.model.codec import encode
from isthmus.model.index import ClusterState
from isthmus.model.resources import (
    ClusterSettings,
    Deployment,
    Namespace,
    Resource,
    Service,
    ServiceAddress,
    resource_key,
    trace_collector,
)
from isthmus.platform.local import dns, netns, wan
from isthmus.platform.local.netplan import ClusterNetwork
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.pods import PodPlan, PodRuntime
from isthmus.platform.local.service_proxy import service_rules
from isthmus.platform.local.settings import MeshSettings
from isthmus.platform.local.store import Store
from isthmus.platform.local.supervisor import Supervised

log = logging.getLogger(__name__)
Key = tuple[str, str, str]


def template_hash(d: Deployment) -> str:
    return hashlib.sha256(json.dumps(encode(d.template), sort_keys=True).encode()).hexdigest()[:8]


def _suffix() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(5))


class LocalCluster:
    def __init__(
        self, net: ClusterNetwork, store: Store, paths: StatePaths, drain_seconds: float, mesh: MeshSettings
    ) -> None:
        self.net = net
        self.name = net.name
        self.mesh = mesh
        self.settings = ClusterSettings(name=net.name, trust_domain=mesh.trust_domain)
        self.store = store
        self.paths = paths
        self.drain_seconds = drain_seconds
        self.objects: dict[Key, Resource] = {resource_key(r): r for r in store.objects(net.name)}
        self.service_ips = store.service_ips(net.name)
        self.pods: dict[str, PodRuntime] = {}
        self._terminating: set[PodRuntime] = set()
        self.controlplane: Supervised | None = None
        self._watchers: set[asyncio.Queue[ClusterState]] = set()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dns: asyncio.DatagramTransport | None = None
        self._dns_names: dict[str, str] = {}
        self._publish_pending = False

    # lifecycle

    async def start(self) -> None:
        await netns.create_cluster(self.net)
        await wan.connect_node(self.net)
        self._assign_service_ips()
        self._dns = await dns.serve(self.net.netns, self.net.node_ip, lambda: self._dns_names)
        self._start_controlplane()
        await self.reconcile()

    def _controlplane_argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "isthmus.controlplane",
            "--cluster",
            self.name,
            "--api-socket",
            str(self.paths.api_socket),
            "--ads-socket",
            str(self.paths.ads_socket(self.name)),
            "--home",
            str(self.paths.home),
            "--trust-domain",
            self.settings.trust_domain,
            "--workload-cert-lifetime",
            str(int(self.mesh.workload_cert_lifetime.total_seconds())),
        ]

    def _start_controlplane(self) -> None:
        self.controlplane = Supervised(
            f"{self.name}/controlplane",
            self._controlplane_argv(),
            {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONUNBUFFERED": "1"},
            self.paths.home,
            self.paths.controller_log(self.name),
        )
        self.controlplane.start()

    def change_settings(self, mesh: MeshSettings) -> None:
        """New mesh settings (same trust domain): the control plane restarts with them; sidecars keep serving."""
        self.mesh = mesh
        if self.controlplane:
            self.controlplane.argv = self._controlplane_argv()
            self.controlplane.kill()

    async def stop(self, drain: bool = False) -> None:
        async with self._lock:
            await asyncio.gather(*(p.stop(self.drain_seconds if drain else 0) for p in self.pods.values()))
            self.pods.clear()
        if self.controlplane:
            await self.controlplane.stop()
        if self._dns:
            self._dns.close()
        await netns.delete_netns(self.net.netns)

    # desired state

    def deployments(self) -> list[Deployment]:
        return [r for r in self.objects.values() if isinstance(r, Deployment)]

    def services(self) -> list[Service]:
        return [r for r in self.objects.values() if isinstance(r, Service)]

    async def write(self, put: Sequence[Resource], delete: Sequence[Resource] = ()) -> None:
        self.store.write(self.name, put, delete)
        for r in delete:
            self.objects.pop(resource_key(r), None)
            if isinstance(r, Service):
                self.service_ips.pop((r.meta.namespace, r.meta.name), None)
        for r in put:
            self.objects[resource_key(r)] = r
        self._assign_service_ips()
        self.publish()
        self._spawn(self.reconcile(), "reconcile")

    def _assign_service_ips(self) -> None:
        used = set(self.service_ips.values())
        slot = 0
        for svc in sorted(self.services(), key=lambda s: (s.meta.namespace, s.meta.name)):
            key = (svc.meta.namespace, svc.meta.name)
            if key in self.service_ips:
                continue
            while self.net.service_ip(slot) in used:
                slot += 1
            ip = self.net.service_ip(slot)
            used.add(ip)
            self.service_ips[key] = ip
            self.store.set_service_ip(self.name, key[0], key[1], ip)
        self._dns_names = dns.service_names(self.service_ips)

    # pods

    async def reconcile(self) -> None:
        async with self._lock:
            starts: list[PodRuntime] = []
            stops: list[PodRuntime] = []
            wanted = {(d.meta.namespace, d.meta.name): d for d in self.deployments()}
            for pod in list(self.pods.values()):
                d = wanted.get((pod.plan.namespace, pod.plan.deployment))
                if d is None or pod.plan.template_hash != template_hash(d):
                    stops.append(pod)
            for (ns, name), d in wanted.items():
                h = template_hash(d)
                current = [
                    p
                    for p in self.pods.values()
                    if p.plan.namespace == ns and p.plan.deployment == name and p.plan.template_hash == h
                ]
                current.sort(key=lambda p: p.plan.slot)
                if len(current) > d.replicas:
                    stops.extend(current[d.replicas :])
                for _ in range(d.replicas - len(current)):
                    starts.append(self._new_pod(d, h))
            for p in stops:
                self.pods.pop(p.plan.name, None)
            self.publish()
            # Start new pods first and stop old ones after, so a rollout never drops to zero replicas.
            await asyncio.gather(*(self._start_pod(p) for p in starts))
        for p in stops:
            self._spawn(self._stop_pod(p), f"stop {p.plan.name}")

    def _new_pod(self, d: Deployment, h: str) -> PodRuntime:
        used = {p.plan.slot for p in self.pods.values()} | self._stopping_slots
        slot = next(i for i in range(len(used) + 1) if i not in used)
        name = f"{d.meta.name}-{h[:5]}-{_suffix()}"
        plan = PodPlan(name, d.meta.namespace, d.meta.name, d.template, h, slot, self.net.pod_ip(slot))
        pod = PodRuntime(plan, self.net, self.paths, self.publish, self.settings.trust_domain)
        self.pods[name] = pod
        return pod

    @property
    def _stopping_slots(self) -> set[int]:
        return {p.plan.slot for p in self._terminating}

    async def _start_pod(self, pod: PodRuntime) -> None:
        try:
            await pod.start()
        except Exception as e:
            log.exception("pod %s failed to start", pod.plan.name)
            pod.phase = f"Failed: {e}"
        self.publish()

    async def _stop_pod(self, pod: PodRuntime) -> None:
        self._terminating.add(pod)
        try:
            await pod.stop(self.drain_seconds)
        finally:
            self._terminating.discard(pod)
            self.publish()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # publishing

    def state(self) -> ClusterState:
        services = tuple(
            ServiceAddress(s, self.service_ips[(s.meta.namespace, s.meta.name)], self.name)
            for s in sorted(self.services(), key=lambda s: (s.meta.namespace, s.meta.name))
            if (s.meta.namespace, s.meta.name) in self.service_ips
        )
        pods = [p.model() for p in self.pods.values()] + [p.model() for p in self._terminating]
        namespaces = tuple(
            sorted((r.meta.name, r.meta.annotations) for r in self.objects.values() if isinstance(r, Namespace))
        )
        # Tracing follows the cluster's Services: on while a trace collector exists (the tracing add-on).
        settings = replace(self.settings, tracing=trace_collector(self.services()))
        return ClusterState(settings, services, tuple(sorted(pods, key=lambda p: (p.namespace, p.name))), namespaces)

    def publish(self) -> None:
        """Coalesce bursts of changes into one state per loop turn."""
        if self._publish_pending:
            return
        self._publish_pending = True
        asyncio.get_running_loop().call_soon(self._publish_now)

    def _publish_now(self) -> None:
        self._publish_pending = False
        state = self.state()
        self._spawn(self._update_unmeshed(state), "service rules")
        for q in self._watchers:
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
            q.put_nowait(state)

    async def _update_unmeshed(self, state: ClusterState) -> None:
        """Give pods without a sidecar the current service VIP rules (only where they changed)."""
        rules = service_rules(state)
        for pod in list(self.pods.values()):
            if pod.injected or pod.phase != "Running" or pod.service_rules == rules:
                continue
            try:
                await netns.install_iptables(pod.netns, rules)
                pod.service_rules = rules
            except netns.CommandFailed as e:
                log.warning("pod %s: could not update service rules: %s", pod.plan.name, e)

    def watch(self) -> asyncio.Queue[ClusterState]:
        q: asyncio.Queue[ClusterState] = asyncio.Queue(maxsize=1)
        q.put_nowait(self.state())
        self._watchers.add(q)
        return q

    def unwatch(self, q: asyncio.Queue[ClusterState]) -> None:
        self._watchers.discard(q)
