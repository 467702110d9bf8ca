"""A cluster's service mirrors: one `LinkController` per link Secret, in the cluster's control plane.

Follows the local platform (its Services and its link Secrets) and starts,
replaces or stops a controller as link Secrets come, change and go; a Secret
that is removed (`unlink`) has its mirrors deleted by its controller before it
stops. A controller that crashes is logged at once and started again a moment
later: one broken link never stops the others, nor the control plane. Answers
`gateways` and `check` with each link's status (`LINKS_OP` on the control plane's
status socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isthmus.model.codec import decode
from isthmus.model.errors import IsthmusError
from isthmus.model.manifests import parse_objects
from isthmus.model.resources import Secret, Service, ServiceAddress
from isthmus.multicluster.controller import ControllerSettings, LinkController
from isthmus.multicluster.errors import BadLinkSecret
from isthmus.multicluster.link_secret import LinkConfig, from_secret
from isthmus.multicluster.local_mirrors import PlatformMirrorStore
from isthmus.multicluster.probes import HttpProber
from isthmus.multicluster.remote_api import TlsRemoteApi
from isthmus.platform.local import rpc
from isthmus.platform.local.paths import StatePaths

log = logging.getLogger(__name__)

LINKS_OP = "links"
"""The status-socket operation: {"op": "links"} -> {"ok": true, "cluster": ..., "links": [...], "broken": [...]}."""
RESTART_DELAY = 5.0
RECONNECT_MAX = 5.0

Factory = Callable[[LinkConfig], LinkController]


@dataclass
class _Running:
    config: LinkConfig
    controller: LinkController
    task: asyncio.Task[None]


class Links:
    def __init__(self, cluster: str, api_socket: Path, paths: StatePaths, factory: Factory | None = None) -> None:
        self.cluster = cluster
        self.api_socket = api_socket
        self.paths = paths
        self._factory = factory
        self._running: dict[str, _Running] = {}
        self._broken: dict[str, str] = {}
        self._local: list[Service] = []

    async def run(self) -> None:
        factory = self._factory or await self._platform_factory()
        delay = 0.1
        try:
            while True:
                try:
                    request = {"op": "watch", "cluster": self.cluster, "links": True}
                    async for msg in rpc.stream(self.api_socket, request):
                        if not msg.get("ok"):
                            log.error("the platform refused the links watch: %s", msg.get("error"))
                            break
                        delay = 0.1
                        services = decode(tuple[ServiceAddress, ...], msg["state"]["services"])
                        self._local = [s.service for s in services]
                        await self._reconcile(self._configs(msg.get("links", [])), factory)
                        for running in self._running.values():
                            running.controller.local_changed(self._local)
                except (OSError, rpc.RpcError, ValueError) as e:
                    log.warning("links watch lost (%s); retrying", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
        finally:
            for running in self._running.values():
                running.task.cancel()

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "cluster": self.cluster,
            "links": [r.controller.status(self._local) for _, r in sorted(self._running.items())],
            "broken": [{"secret": name, "error": error} for name, error in sorted(self._broken.items())],
        }

    def _configs(self, items: list[Any]) -> dict[str, LinkConfig]:
        configs: dict[str, LinkConfig] = {}
        broken: dict[str, str] = {}
        for item in items:
            name = str((item.get("metadata") or {}).get("name")) if isinstance(item, dict) else "?"
            try:
                (secret,) = parse_objects([item], f"secret {name}")
                assert isinstance(secret, Secret)
                config = from_secret(secret)
                if config.linking_cluster != self.cluster:
                    raise BadLinkSecret(
                        config.cluster_name,
                        f"secret {name} was made for cluster {config.linking_cluster}, not {self.cluster};"
                        f" link again: isthmus multicluster link --cluster-name {config.cluster_name}"
                        f" --linking-cluster {self.cluster}",
                    )
            except (IsthmusError, BadLinkSecret, ValueError) as e:
                broken[name] = str(e)
                continue
            configs[config.cluster_name] = config
        for name, error in broken.items():
            if self._broken.get(name) != error:
                log.error("link secret %s is not usable: %s", name, error)
        self._broken = broken
        return configs

    async def _reconcile(self, configs: dict[str, LinkConfig], factory: Factory) -> None:
        for name in [n for n, r in self._running.items() if configs.get(n) != r.config]:
            running = self._running.pop(name)
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.task
            if name not in configs:
                log.info("link %s removed: deleting its mirrors", name)
                await running.controller.remove()
        for name, config in configs.items():
            if name not in self._running:
                controller = factory(config)
                task = asyncio.create_task(self._supervise(controller), name=f"link {name}")
                self._running[name] = _Running(config, controller, task)
                log.info("link %s: controller started (%s)", name, config.api_address)

    async def _supervise(self, controller: LinkController) -> None:
        while True:
            try:
                await controller.run()
            except Exception:
                log.exception(
                    "link %s: the controller crashed; starting it again in %gs", controller.name, RESTART_DELAY
                )
            await asyncio.sleep(RESTART_DELAY)

    async def _platform_factory(self) -> Factory:
        node_netns = await self._node_netns()
        settings = ControllerSettings()

        def anchors() -> str:
            try:
                return self.paths.trust_bundle.read_text()
            except OSError:
                return ""

        def make(config: LinkConfig) -> LinkController:
            return LinkController(
                config,
                TlsRemoteApi(config, node_netns, anchors),
                PlatformMirrorStore(self.api_socket, self.cluster, config.cluster_name),
                HttpProber(node_netns),
                settings,
            )

        return make

    async def _node_netns(self) -> str:
        """The cluster's node namespace, where links leave from (the platform says which)."""
        delay = 0.1
        while True:
            try:
                status = await rpc.acall(self.api_socket, {"op": "status"})
                for c in status.get("clusters", []):
                    if c.get("name") == self.cluster and c.get("netns"):
                        return str(c["netns"])
                log.warning("the platform does not list cluster %s yet", self.cluster)
            except (OSError, TimeoutError, ValueError, rpc.RpcError) as e:
                log.warning("cannot ask the platform for the node of %s (%s); retrying", self.cluster, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX)
