"""The pod's traffic redirection rules (pure): what the init step installs so the app's TCP goes
through the sidecar without the app knowing."""

from __future__ import annotations

from isthmus.model.mesh import ADMIN_PORT, INBOUND_PORT, OUTBOUND_PORT, PROXY_MARK


def iptables_rules(node_ip: str, skip_inbound_ports: tuple[int, ...] = ()) -> str:
    """An `iptables-restore` input for the pod's nat table.

    Envoy's own upstream sockets carry PROXY_MARK and pass untouched; traffic
    from the node address (the platform's readiness probes) reaches the app
    directly, as the kubelet's probes do.
    """
    skip = "".join(f"-A ISTHMUS_INBOUND -p tcp --dport {p} -j RETURN\n" for p in skip_inbound_ports)
    return (
        "*nat\n"
        ":ISTHMUS_INBOUND - [0:0]\n"
        ":ISTHMUS_OUTBOUND - [0:0]\n"
        "-A PREROUTING -p tcp -j ISTHMUS_INBOUND\n"
        f"-A ISTHMUS_INBOUND -p tcp --dport {ADMIN_PORT} -j RETURN\n"
        f"-A ISTHMUS_INBOUND -s {node_ip}/32 -j RETURN\n"
        f"{skip}"
        f"-A ISTHMUS_INBOUND -p tcp -j REDIRECT --to-ports {INBOUND_PORT}\n"
        "-A OUTPUT -p tcp -j ISTHMUS_OUTBOUND\n"
        f"-A ISTHMUS_OUTBOUND -m mark --mark {PROXY_MARK} -j RETURN\n"
        "-A ISTHMUS_OUTBOUND -o lo -d 127.0.0.0/8 -j RETURN\n"
        f"-A ISTHMUS_OUTBOUND -p tcp -j REDIRECT --to-ports {OUTBOUND_PORT}\n"
        "COMMIT\n"
    )
