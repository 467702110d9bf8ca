"""Runs one cluster's control plane: platform watch -> snapshots -> ADS, plus a status socket for `check`.

A separate process from the platform, so restarting it (or it crashing) leaves
pods and their sidecars running on their last good config.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from isthmus.identity.clock import SystemClock
from isthmus.identity.load import load_issuer, load_trust_bundle
from isthmus.identity.reload import TrustFiles, TrustReloader
from isthmus.identity.server import IdentityServer
from isthmus.identity.service import IdentityService
from isthmus.identity.signing import DEFAULT_LIFETIME, SigningPolicy
from isthmus.identity.spiffe import DEFAULT_TRUST_DOMAIN
from isthmus.identity.tokens import HmacTokenVerifier, load_token_secret
from isthmus.model.codec import decode
from isthmus.model.index import ClusterState
from isthmus.multicluster.links import LINKS_OP, Links
from isthmus.platform.local import rpc
from isthmus.platform.local.paths import StatePaths
from isthmus.viz.collector import QUERY_OP, Collector
from isthmus.viz.controlplane_metrics import ControlPlaneFigures, families
from isthmus.viz.fleet_local import LocalFleet
from isthmus.viz.metrics_server import serve_metrics
from isthmus.viz.prometheus_text import render
from isthmus.xds.ads import AdsServer, start_ads_server
from isthmus.xds.cache import SnapshotCache
from isthmus.xds.translate import build_sidecars

log = logging.getLogger("isthmus.controlplane")
RECONNECT_MAX = 5.0


def apply_state(cache: SnapshotCache, state: ClusterState) -> tuple[int, int]:
    """Set every meshed pod's snapshot and drop those of pods that are gone; returns (changed, removed)."""
    wanted = build_sidecars(state)
    changed = sum(1 for n, snap in wanted.items() if cache.set(n, snap))
    gone = [n for n in cache.node_ids() if n not in wanted]
    for n in gone:
        cache.remove(n)
    return changed, len(gone)


async def follow_platform(cluster: str, api_socket: Path, cache: SnapshotCache) -> None:
    delay = 0.1
    while True:
        try:
            async for msg in rpc.stream(api_socket, {"op": "watch", "cluster": cluster}):
                if not msg.get("ok"):
                    log.error("platform refused the watch: %s", msg.get("error"))
                    break
                delay = 0.1
                state = decode(ClusterState, msg["state"])
                changed, removed = apply_state(cache, state)
                if changed or removed:
                    log.info(
                        "state: %d pods, %d services; %d proxies changed, %d removed",
                        len(state.pods),
                        len(state.services),
                        changed,
                        removed,
                    )
        except (OSError, rpc.RpcError) as e:
            log.warning("platform watch lost (%s); retrying", e)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RECONNECT_MAX)


def identity_server(paths: StatePaths, cluster: str, trust_domain: str, cert_lifetime: timedelta) -> IdentityServer:
    """The cluster's CSR signing service, with the cluster's issuer and the mesh's anchors."""
    clock = SystemClock()
    bundle = load_trust_bundle(paths.trust_bundle, clock)
    issuer = load_issuer(
        paths.issuer_cert(cluster), paths.issuer_key(cluster), bundle, clock, trust_domain=trust_domain
    )
    tokens = HmacTokenVerifier(load_token_secret(paths.token_secret(cluster)), cluster, trust_domain, clock)
    policy = SigningPolicy(lifetime=cert_lifetime)
    return IdentityServer(IdentityService(issuer, bundle, tokens, clock, trust_domain=trust_domain, policy=policy))


def status_payload(ads: AdsServer) -> dict[str, Any]:
    st = ads.status()
    return {
        "proxies": [
            {
                "node_id": p.node_id,
                "connected_since": p.connected_since,
                "in_sync": p.in_sync,
                "has_snapshot": p.has_snapshot,
                "types": [{**asdict(t), "short_type": t.short_type, "in_sync": t.in_sync} for t in p.types],
            }
            for p in st.proxies
        ],
        "pushes_total": dict(st.pushes_total),
        "nacks_total": dict(st.nacks_total),
    }


def metrics_page(cluster: str, ads: AdsServer, identity: IdentityServer, collector: Collector) -> str:
    """The control plane's own metrics, in Prometheus's text format."""
    push = ads.push_to_ack()
    issued = identity.service.stats
    figures = ControlPlaneFigures(
        cluster, ads.status(), push.buckets, push.total, issued.issued, dict(issued.refused), collector.stats()
    )
    return render(families(figures))


@dataclass(frozen=True)
class Options:
    """One cluster's control plane, as the platform starts it."""

    cluster: str
    api_socket: Path
    """The platform API to watch."""
    ads_socket: Path
    status_socket: Path
    paths: StatePaths
    trust_domain: str
    cert_lifetime: timedelta
    """Lifetime of the workload certificates the identity service signs."""


async def amain(opts: Options) -> int:
    cluster, api_socket, ads_socket, paths = opts.cluster, opts.api_socket, opts.ads_socket, opts.paths
    cache = SnapshotCache()
    ads_socket.parent.mkdir(parents=True, exist_ok=True)
    paths.identity_socket(cluster).parent.mkdir(parents=True, exist_ok=True)
    ads = await start_ads_server(cache, f"unix:{ads_socket}")
    identity = identity_server(paths, cluster, opts.trust_domain, opts.cert_lifetime)
    # Issuer and anchor rotation replace these files; the service follows them without a restart.
    files = TrustFiles(paths.issuer_cert(cluster), paths.issuer_key(cluster), paths.trust_bundle)
    reloader = TrustReloader(identity, files, opts.trust_domain, identity.service.clock)
    # Golden metrics need history: the collector reads every sidecar every few seconds (`isthmus stat`).
    collector = Collector(LocalFleet(api_socket, cluster))
    # One service-mirror controller per link Secret of this cluster (`isthmus multicluster link`).
    links = Links(cluster, api_socket, paths)

    async def on_status(req: dict[str, Any], _w: asyncio.StreamWriter) -> dict[str, Any]:
        if req.get("op") == "identity":
            # `isthmus identity rotate` asks right after writing the files instead of waiting for the next look.
            if req.get("reload"):
                reloader.check(force=True)
            return {"ok": True, **reloader.served()}
        if req.get("op") == QUERY_OP:
            return collector.answer(req)
        if req.get("op") == LINKS_OP:
            return links.answer(req)
        if req.get("op") != "status":
            return {"ok": False, "error": f"unknown operation {req.get('op')!r}"}
        return {"ok": True, **status_payload(ads)}

    status_server = await rpc.serve(opts.status_socket, on_status)
    metrics_socket = opts.status_socket.with_name(f"cp-{cluster}-metrics.sock")
    metrics_server = await serve_metrics(
        f"unix:{metrics_socket}", lambda: metrics_page(cluster, ads, identity, collector)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("control plane for %s serving ADS on %s", cluster, ads_socket)
    async with identity, asyncio.TaskGroup() as tg:
        await identity.start_unix(paths.identity_socket(cluster))
        follower = tg.create_task(follow_platform(cluster, api_socket, cache), name="platform watch")
        signer = tg.create_task(identity.serve_forever(), name="identity service")
        watcher = tg.create_task(reloader.run(), name="identity files watch")
        collecting = tg.create_task(collector.run(), name="traffic collector")
        mirroring = tg.create_task(links.run(), name="service mirrors")
        log.info("identity service for %s on %s", cluster, paths.identity_socket(cluster))
        await stop.wait()
        follower.cancel()
        signer.cancel()
        watcher.cancel()
        collecting.cancel()
        mirroring.cancel()
    status_server.close()
    metrics_server.close()
    await ads.stop(grace=1.0)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="isthmus-controlplane", description="One cluster's Isthmus control plane.")
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--api-socket", required=True, type=Path)
    parser.add_argument("--ads-socket", required=True, type=Path)
    parser.add_argument("--status-socket", type=Path)
    parser.add_argument("--home", required=True, type=Path, help="the local platform's state directory")
    parser.add_argument("--trust-domain", default=DEFAULT_TRUST_DOMAIN)
    parser.add_argument(
        "--workload-cert-lifetime",
        type=int,
        default=int(DEFAULT_LIFETIME.total_seconds()),
        metavar="SECONDS",
        help="lifetime of the workload certificates this cluster's identity service signs",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = Options(
        cluster=args.cluster,
        api_socket=args.api_socket,
        ads_socket=args.ads_socket,
        status_socket=args.status_socket or StatePaths(args.home).controlplane_socket(args.cluster),
        paths=StatePaths(args.home),
        trust_domain=args.trust_domain,
        cert_lifetime=timedelta(seconds=args.workload_cert_lifetime),
    )
    return asyncio.run(amain(opts))
