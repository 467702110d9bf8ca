"""The shared "wan" network of the local platform (I/O through `ip`, `sysctl` and `iptables`).

One namespace with one bridge, made by the daemon; only each cluster's node and
each cluster's gateway pod have a leg on it (addresses in `netplan`). Pods reach
other clusters' gateways through their node, which forwards to gateways only
and masquerades (see `netplan.node_wan_rules`).
"""

from __future__ import annotations

import contextlib
import os

from isthmus.platform.local import netns
from isthmus.platform.local.netplan import (
    NODE_WAN_IF,
    POD_WAN_IF,
    WAN_CIDR,
    WAN_NETNS,
    ClusterNetwork,
    gateway_veth_name,
    node_wan_rules,
    wan_veth_name,
)


async def create_wan() -> None:
    """The wan namespace and its bridge; no address of its own, and it forwards nothing at L3."""
    if os.path.exists(netns.netns_path(WAN_NETNS)):
        await netns.run("ip", "netns", "del", WAN_NETNS)
    await netns.run("ip", "netns", "add", WAN_NETNS)
    await netns.in_netns(WAN_NETNS, "ip", "link", "set", "lo", "up")
    await netns.in_netns(WAN_NETNS, "ip", "link", "add", "br0", "type", "bridge")
    await netns.in_netns(WAN_NETNS, "ip", "link", "set", "br0", "up")


async def delete_wan() -> None:
    await netns.delete_netns(WAN_NETNS)


async def _leg(bridge_side: str, other_netns: str, other_if: str, ip: str) -> None:
    """A veth from the wan bridge into `other_netns`, named `other_if` there, holding `ip`."""
    peer = ["peer", "name", other_if, "address", netns.mac_for(ip), "netns", other_netns]
    await netns.run("ip", "link", "add", bridge_side, "netns", WAN_NETNS, "type", "veth", *peer)
    await netns.in_netns(WAN_NETNS, "ip", "link", "set", bridge_side, "master", "br0", "up")
    await netns.in_netns(other_netns, "ip", "addr", "add", f"{ip}/{WAN_CIDR.prefixlen}", "dev", other_if)
    await netns.in_netns(other_netns, "ip", "link", "set", other_if, "up")


async def connect_node(net: ClusterNetwork) -> None:
    """Put the cluster's node on the wan, forwarding its pods' connections to gateways only."""
    await _leg(wan_veth_name(net.index), net.netns, NODE_WAN_IF, net.wan_ip)
    await netns.in_netns(net.netns, "iptables-restore", stdin=node_wan_rules(net))
    await netns.in_netns(net.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")


async def connect_gateway(net: ClusterNetwork, pod_netns: str) -> None:
    """Give the cluster's gateway pod its second interface, on the wan.

    The pod keeps its default route through its node; the wan /24 is directly on
    eth1, so the gateway answers callers there (their nodes' addresses) directly.
    The pod does not forward, so the wan reaches nothing behind it.
    """
    # A gateway pod that was replaced may still hold the leg; the new pod takes the address over.
    with contextlib.suppress(netns.CommandFailed):
        await netns.in_netns(WAN_NETNS, "ip", "link", "del", gateway_veth_name(net.index))
    await _leg(gateway_veth_name(net.index), pod_netns, POD_WAN_IF, net.gateway_wan_ip)
    await netns.in_netns(pod_netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
