"""A real Envoy, in a network namespace of its own, takes the sidecar config over ADS.

This checks what `--mode validate` cannot: that Envoy ACKs the resources exactly
as served (LDS, CDS, then EDS and RDS by name), becomes ready, exposes only
readiness and metrics on the pod IP, routes redirected inbound requests to the app
by protocol header, and closes redirected connections to its own ports.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from isthmus.model.mesh import PROXY_MARK, node_id
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from isthmus.xds.translate import build_sidecar
from isthmus.xds.translate.fragments import pack
from tests.xds.envoy_config import find_envoy
from tests.xds.fixtures import WEB_1, WEB_CLUSTER, basic_state

ENVOY = find_envoy()
UNSHARE = shutil.which("unshare")
POD_IP = "127.0.0.2"  # on the namespace's own loopback; the admin API keeps 127.0.0.1
OTHER_IP = "127.0.0.3"  # stands for any address outside the pod
pytestmark = [
    pytest.mark.envoy,
    pytest.mark.netns,
    pytest.mark.skipif(
        ENVOY is None or UNSHARE is None or not shutil.which("iptables") or not shutil.which("ip"),
        reason="needs envoy, unshare, iptables and ip",
    ),
]


class OneSnapshotAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Just enough State-of-the-World ADS to serve one fixed snapshot and record ACKs and NACKs."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.acked: dict[str, str] = {}
        self.nacks: list[tuple[str, str]] = []
        self._nonces = itertools.count(1)
        self._lock = threading.Lock()

    def StreamAggregatedResources(
        self, request_iterator: Iterator[discovery_pb2.DiscoveryRequest], context: grpc.ServicerContext
    ) -> Iterator[discovery_pb2.DiscoveryResponse]:
        answered: dict[str, tuple[str, ...]] = {}
        for req in request_iterator:
            kind = req.type_url
            with self._lock:
                if req.HasField("error_detail"):
                    self.nacks.append((kind, req.error_detail.message))
                elif req.response_nonce and req.version_info == self.snap.version(kind):
                    self.acked[kind] = req.version_info
            names = tuple(sorted(req.resource_names))
            if answered.get(kind) == names:
                continue  # an ACK or NACK of what we sent: nothing new to say
            answered[kind] = names
            have = self.snap.of_type(kind)
            wildcard = kind in (CLUSTER, LISTENER)
            chosen = list(have.values()) if wildcard else [have[n] for n in names if n in have]
            yield discovery_pb2.DiscoveryResponse(
                version_info=self.snap.version(kind),
                type_url=kind,
                nonce=str(next(self._nonces)),
                resources=[pack(m) for m in chosen],
            )


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="isthmus-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_envoy_takes_the_sidecar_config_over_ads(short_dir: Path) -> None:
    assert ENVOY is not None and UNSHARE is not None
    snap = build_sidecar(basic_state(), WEB_1)
    ads = OneSnapshotAds(snap)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(ads, server)
    socket_path = short_dir / "ads.sock"
    server.add_insecure_port(f"unix:{socket_path}")
    server.start()
    try:
        bootstrap = render_bootstrap(
            node_id(WEB_1.cluster, WEB_1.namespace, WEB_1.name), "web", POD_IP, str(socket_path), {"pod": WEB_1.name}
        )
        config = short_dir / "bootstrap.json"
        config.write_text(json.dumps(bootstrap))
        log = short_dir / "envoy.log"
        probe = Path(__file__).with_name("sidecar_probe.py")
        # A PID namespace of its own: if the probe dies or times out, its Envoy and app die with it.
        args = [ENVOY, str(config), str(log), POD_IP, "8080", OTHER_IP, str(PROXY_MARK)]
        proc = subprocess.run(
            [UNSHARE, "-Urnmpf", "--kill-child", sys.executable, str(probe), *args],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        server.stop(grace=None)
    envoy_log = log.read_text() if log.exists() else ""
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip(f"no network namespaces here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr + envoy_log
    seen = json.loads(proc.stdout)

    assert ads.nacks == [], envoy_log
    assert ads.acked == {t: snap.version(t) for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)}, envoy_log
    assert seen["ready"] == 200, (seen, envoy_log)
    assert sorted(seen["dynamic"]["dynamic_listeners"]) == ["inbound", "outbound"]
    assert sorted(seen["dynamic"]["dynamic_active_clusters"]) == sorted(snap.of_type(CLUSTER))
    assert sorted(seen["dynamic"]["dynamic_route_configs"]) == sorted(snap.of_type(ROUTE))
    assert WEB_CLUSTER in seen["dynamic"]["dynamic_endpoint_configs"]

    assert seen["metrics"] == [200, True]
    assert seen["prometheus"] == [200, True]
    assert seen["config_dump_from_pod_ip"] == 404
    assert seen["quit_from_pod_ip"] == 404

    # The inbound route picks the upstream protocol by header: the HTTP/1.1-only app
    # answers unless the header asks for HTTP/2, and it never sees the header.
    inbound = seen["inbound"]
    assert inbound["none"] == {"status": 200, "app_saw_header": False}, envoy_log
    assert inbound["HTTP/1.1"] == {"status": 200, "app_saw_header": False}, envoy_log
    assert inbound["HTTP/2"]["status"] in (502, 503)
    stats = {k: int(v) for k, v in seen["inbound_stats"].items()}
    assert stats["cluster.inbound|8080.upstream_rq_total"] == 1, stats
    assert stats["cluster.inbound|8080|http1.upstream_rq_total"] == 1, stats
    assert stats["cluster.inbound|8080|http2.upstream_cx_total"] >= 1, stats
    assert seen["loop_guard_closes"] == {"inbound": True, "outbound": True}
    assert seen["still_ready"] == 200
