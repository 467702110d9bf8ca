"""Service virtual IPs for pods without a sidecar (pure): what kube-proxy does on a Kubernetes node.

A meshed pod's sidecar resolves a service VIP itself; a pod outside the mesh
gets DNAT rules in its own network namespace instead, so its connections
arrive at the chosen endpoint from the pod's own address (and are still
subject to that endpoint's inbound sidecar).
"""

from __future__ import annotations

from isthmus.model.index import ClusterState

CHAIN = "ISTHMUS_SERVICES"


def hook_rules() -> str:
    """Installed once when a pod without a sidecar starts."""
    return f"*nat\n:{CHAIN} - [0:0]\n-A OUTPUT -j {CHAIN}\nCOMMIT\n"


def service_rules(state: ClusterState) -> str:
    """The whole chain, replaced at once by `iptables-restore --noflush` (declaring a chain flushes it)."""
    lines = ["*nat", f":{CHAIN} - [0:0]"]
    for svc in state.services:
        for port in svc.service.ports:
            if port.protocol != "TCP":
                continue
            endpoints = [e for e in state.endpoints(svc, port) if e.ready]
            match = f"-A {CHAIN} -d {svc.cluster_ip}/32 -p tcp --dport {port.port}"
            for i, e in enumerate(endpoints):
                remaining = len(endpoints) - i
                # Each rule takes 1/remaining of what reaches it: an even spread overall.
                pick = "" if remaining == 1 else f" -m statistic --mode random --probability {1 / remaining:.6f}"
                lines.append(f"{match}{pick} -j DNAT --to-destination {e.ip}:{e.port}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
