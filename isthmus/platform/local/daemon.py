"""The local platform daemon: owns the clusters, their namespaces and pods, and serves the platform API.

Runs inside the isthmus user + network + mount + PID namespace (see `init`), so
when it dies everything it started dies with it; its SQLite store brings
everything back on the next `isthmus up`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from isthmus.platform.local import rpc, trust, wan
from isthmus.platform.local.api import Api
from isthmus.platform.local.cluster import LocalCluster
from isthmus.platform.local.link_api import LinkApi
from isthmus.platform.local.netplan import plan_cluster
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.settings import MeshSettings, SettingsError, trust_domain_change_problem
from isthmus.platform.local.store import Store

log = logging.getLogger("isthmus.daemon")


class Daemon:
    def __init__(self, paths: StatePaths, drain_seconds: float, settings: MeshSettings | None = None) -> None:
        self.paths = paths
        self.store = Store(paths.db)
        self.drain_seconds = drain_seconds
        stored = self.store.mesh_settings()
        self.settings = stored or MeshSettings()
        if settings is not None:
            if stored is not None:
                self._check_trust_domain(settings)  # the CLI checked it too; the daemon is the authority
            self.settings = settings
        self.store.set_mesh_settings(self.settings)
        self.clusters: dict[str, LocalCluster] = {}
        self.link_apis: dict[str, LinkApi] = {}
        self.ready = False
        self._wan_ready = False
        self.stopping = asyncio.Event()

    async def ensure_clusters(self, names: list[str]) -> list[str]:
        """Start every stored cluster plus the named ones; returns those newly created."""
        if not self._wan_ready:
            # Before any cluster: each node puts a leg on it as it starts.
            await wan.create_wan()
            self._wan_ready = True
        created = []
        domain = self.settings.trust_domain
        trust.ensure_anchor(self.paths, domain)
        known = {c.name for c in self.store.clusters()}
        for name in names:
            if name not in known:
                # Trust material first: a cluster that cannot get an issuer is not stored at all.
                trust.ensure_cluster(self.paths, name, domain)
                self.store.add_cluster(name)
                created.append(name)
        starts = []
        new: list[LocalCluster] = []
        for row in self.store.clusters():
            trust.ensure_cluster(self.paths, row.name, domain)
            if row.name not in self.clusters:
                cluster = LocalCluster(
                    plan_cluster(row.name, row.index, row.pod_cidr),
                    self.store,
                    self.paths,
                    self.drain_seconds,
                    self.settings,
                )
                self.clusters[row.name] = cluster
                starts.append(cluster.start())
                new.append(cluster)
        await asyncio.gather(*starts)
        for cluster in new:
            await self._start_link_api(cluster)
        return created

    async def _start_link_api(self, cluster: LocalCluster) -> None:
        api = LinkApi(cluster, self.paths)
        try:
            await api.start()
        except Exception:
            # Links to this cluster fail (and `multicluster check` says so); the cluster itself runs on.
            log.exception("cluster %s: cannot start its link API", cluster.name)
            return
        self.link_apis[cluster.name] = api

    def _check_trust_domain(self, wanted: MeshSettings) -> None:
        if problem := trust_domain_change_problem(self.settings.trust_domain, wanted.trust_domain):
            raise SettingsError(problem)

    def change_settings(self, wanted: MeshSettings) -> bool:
        """Adopt `wanted` (same trust domain); the control planes restart to sign with it. True if it changed."""
        self._check_trust_domain(wanted)
        if wanted == self.settings:
            return False
        self.store.set_mesh_settings(wanted)
        self.settings = wanted
        for cluster in self.clusters.values():
            cluster.change_settings(wanted)
        return True

    async def remove_cluster(self, name: str) -> None:
        if api := self.link_apis.pop(name, None):
            await api.close()
        cluster = self.clusters.pop(name)
        await cluster.stop()
        self.store.remove_cluster(name)

    async def shutdown(self) -> None:
        await asyncio.gather(*(api.close() for api in self.link_apis.values()), return_exceptions=True)
        await asyncio.gather(*(c.stop() for c in self.clusters.values()), return_exceptions=True)
        with contextlib.suppress(Exception):
            await wan.delete_wan()
        self.stopping.set()


async def amain(paths: StatePaths, clusters: list[str], drain_seconds: float, settings: MeshSettings | None) -> int:
    daemon = Daemon(paths, drain_seconds, settings)
    api = Api(daemon)
    server = await rpc.serve(paths.api_socket, api.handle)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(daemon.shutdown()))
    try:
        await daemon.ensure_clusters(clusters)
        daemon.ready = True
        log.info("ready: clusters %s", ", ".join(daemon.clusters))
        await daemon.stopping.wait()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            paths.api_socket.unlink()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="isthmus-daemon")
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--clusters", default="")
    parser.add_argument("--drain-seconds", type=float, default=1.0)
    parser.add_argument("--settings", help="mesh settings (JSON) given to this `up`; default: the stored ones")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = [c for c in args.clusters.split(",") if c]
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    settings = MeshSettings.from_json(args.settings) if args.settings else None
    return asyncio.run(amain(StatePaths(args.home), names, args.drain_seconds, settings))


if __name__ == "__main__":
    raise SystemExit(main())
