"""A real Envoy, in a network namespace of its own, takes the sidecar config over ADS.

This checks what `--mode validate` cannot: that Envoy ACKs the resources exactly
as served (LDS, CDS, then EDS and RDS by name), becomes ready, exposes only
readiness and metrics on the pod IP, routes redirected inbound requests to the app
by protocol header, and closes redirected connections to its own ports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.model.mesh import PROXY_MARK, node_id
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from isthmus.xds.translate import build_sidecar
from tests.xds.certs import TestMesh, write_identity
from tests.xds.envoy_config import find_envoy
from tests.xds.fixed_ads import FixedAds, serve
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


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes; pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="isthmus-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_envoy_takes_the_sidecar_config_over_ads(short_dir: Path) -> None:
    assert ENVOY is not None and UNSHARE is not None
    mesh = TestMesh()
    identity = write_identity(short_dir / "identity", mesh, mesh.workload("default", "web"))
    snap = build_sidecar(basic_state(), WEB_1, str(identity))
    node = node_id(WEB_1.cluster, WEB_1.namespace, WEB_1.name)
    ads = FixedAds({node: snap})
    socket_path = short_dir / "ads.sock"
    server = serve(ads, socket_path)
    try:
        bootstrap = render_bootstrap(node, "web", POD_IP, str(socket_path), {"pod": WEB_1.name})
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
    assert ads.acked[node] == {t: snap.version(t) for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)}, envoy_log
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
