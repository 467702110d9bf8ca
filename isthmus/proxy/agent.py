"""The sidecar agent: renders Envoy's bootstrap for this pod and becomes Envoy.

It replaces itself with Envoy (exec) so a pod carries one proxy process; the
platform supervises that process and restarts it with back-off if it dies.
Identity (a key made here, a CSR, certificate renewal) joins this agent in
the identity work, which is why it exists as a step of its own.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from isthmus.model.mesh import parse_node_id
from isthmus.proxy.bootstrap import render_bootstrap
from isthmus.proxy.envoy_binary import envoy_path


def envoy_argv(binary: str, bootstrap: Path, log_level: str) -> list[str]:
    return [
        binary,
        "-c",
        str(bootstrap),
        "--disable-hot-restart",  # every pod shares /dev/shm; hot restart would collide
        "--concurrency",
        "1",
        "--log-level",
        log_level,
        "--drain-time-s",
        "5",
        "--drain-strategy",
        "immediate",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="isthmus-proxy", description="Start the Isthmus sidecar (Envoy) for this pod."
    )
    parser.add_argument("--node-id", required=True, help="<cluster>/<namespace>/<pod>")
    parser.add_argument("--pod-ip", required=True)
    parser.add_argument("--ads-socket", required=True, help="Unix socket of the cluster's ADS server")
    parser.add_argument("--bootstrap", required=True, type=Path, help="where to write Envoy's bootstrap")
    parser.add_argument("--log-level", default=os.environ.get("ISTHMUS_PROXY_LOG_LEVEL", "warning"))
    args = parser.parse_args()
    cluster, namespace, pod = parse_node_id(args.node_id)
    metadata = {
        "pod": pod,
        "namespace": namespace,
        "cluster": cluster,
        "service_account": os.environ.get("ISTHMUS_SERVICE_ACCOUNT", "default"),
        "pod_ip": args.pod_ip,
    }
    bootstrap = render_bootstrap(args.node_id, cluster, args.pod_ip, args.ads_socket, metadata)
    tmp = args.bootstrap.with_suffix(".tmp")
    tmp.write_text(json.dumps(bootstrap, indent=1))
    tmp.replace(args.bootstrap)
    argv = envoy_argv(envoy_path(), args.bootstrap, args.log_level)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
