"""The local platform's address plan (pure): which addresses a cluster, its pods and services get.

Each cluster is its own network namespace with one bridge, so clusters never
see each other's pods; the plan still gives each cluster distinct ranges by
default so addresses in logs say which cluster they belong to (a cluster may
choose an overlapping pod range: nothing routes between pod networks).

The shared "wan" network holds only each cluster's node (its link endpoint, and
the address its pods' connections to other gateways leave from) and each
cluster's gateway: nodes in WAN_NODES, gateways in WAN_GATEWAYS, so one prefix
says what a pod may reach across the wan.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from isthmus.model.mesh import ADMIN_PORT, INBOUND_PORT

CLUSTER_DOMAIN = "cluster.local"
MAX_CLUSTERS = 32

WAN_NETNS = "isthmus-wan"
WAN_CIDR = ipaddress.IPv4Network("172.31.255.0/24")
WAN_NODES = ipaddress.IPv4Network("172.31.255.32/27")
WAN_GATEWAYS = ipaddress.IPv4Network("172.31.255.128/27")
# Interface names: the node's leg in the cluster namespace, and a gateway pod's second one.
NODE_WAN_IF = "wan0"
POD_WAN_IF = "eth1"
# What a pod may reach on another cluster's gateway: its mTLS listener and its probe endpoint.
GATEWAY_WAN_PORTS = f"{INBOUND_PORT},{ADMIN_PORT}"
# The node's link API (read-only, TLS, credential required): the one port a node opens to the wan.
LINK_API_PORT = 6443
# Pod networks may not take these: services, the wan, loopback and link-local.
_RESERVED = (
    ipaddress.IPv4Network("10.96.0.0/11"),
    WAN_CIDR,
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv4Network("169.254.0.0/16"),
)
_PRIVATE = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


@dataclass(frozen=True)
class ClusterNetwork:
    name: str
    index: int
    pod_cidr: ipaddress.IPv4Network
    service_cidr: ipaddress.IPv4Network

    @property
    def netns(self) -> str:
        return f"isthmus-c{self.index}"

    @property
    def node_ip(self) -> str:
        """The cluster's own address on its bridge: DNS and the platform's probes come from here."""
        return str(self.pod_cidr.network_address + 1)

    @property
    def prefixlen(self) -> int:
        return self.pod_cidr.prefixlen

    @property
    def wan_ip(self) -> str:
        """The node's address on the wan: its link endpoint, and its pods' source address there."""
        return str(WAN_NODES.network_address + self.index)

    @property
    def gateway_wan_ip(self) -> str:
        """The cluster's gateway's address on the wan (the gateway pod's second interface)."""
        return str(WAN_GATEWAYS.network_address + self.index)

    def pod_ip(self, slot: int) -> str:
        # Slots start after the first /24, which is kept for the node itself.
        addr = self.pod_cidr.network_address + 257 + slot
        if addr not in self.pod_cidr or addr == self.pod_cidr.broadcast_address:
            raise ValueError(f"cluster {self.name}: pod network {self.pod_cidr} is full")
        return str(addr)

    def service_ip(self, slot: int) -> str:
        addr = self.service_cidr.network_address + 10 + slot
        if addr not in self.service_cidr or addr == self.service_cidr.broadcast_address:
            raise ValueError(f"cluster {self.name}: service network {self.service_cidr} is full")
        return str(addr)


def plan_cluster(name: str, index: int, pod_cidr: str | None = None) -> ClusterNetwork:
    if not 0 <= index < MAX_CLUSTERS:
        raise ValueError(f"at most {MAX_CLUSTERS} clusters")
    pods = parse_pod_cidr(pod_cidr) if pod_cidr else ipaddress.IPv4Network(f"10.{16 + index}.0.0/16")
    return ClusterNetwork(
        name=name,
        index=index,
        pod_cidr=pods,
        service_cidr=ipaddress.IPv4Network(f"10.{96 + index}.0.0/16"),
    )


def parse_pod_cidr(value: str) -> ipaddress.IPv4Network:
    """A pod network a cluster may choose; ValueError with a one-line reason otherwise.

    Private IPv4 only, /8 to /23 (the first /24 is the node's, pods take the rest),
    clear of the service ranges and the wan. Other clusters' pod networks may overlap.
    """
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as e:
        raise ValueError(f"pod network {value!r} is not an IPv4 network like 10.16.0.0/16 ({e})") from None
    if not 8 <= net.prefixlen <= 23:
        raise ValueError(f"pod network {net} must be from /8 to /23 in size")
    if not any(net.subnet_of(p) for p in _PRIVATE):
        raise ValueError(f"pod network {net} must be private (inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)")
    for reserved in _RESERVED:
        if net.overlaps(reserved):
            raise ValueError(f"pod network {net} overlaps {reserved}, which the local platform keeps for itself")
    return net


def veth_name(cluster_index: int, pod_slot: int) -> str:
    """Host-side veth name; Linux allows 15 characters."""
    return f"ve{cluster_index}p{pod_slot}"


def wan_veth_name(cluster_index: int) -> str:
    """The wan bridge's side of a cluster node's wan link."""
    return f"wn{cluster_index}"


def gateway_veth_name(cluster_index: int) -> str:
    """The wan bridge's side of a cluster gateway's wan link."""
    return f"wg{cluster_index}"


def resolv_conf(net: ClusterNetwork, namespace: str) -> str:
    search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    return f"nameserver {net.node_ip}\nsearch {search}\noptions ndots:5 timeout:1 attempts:2\n"


def hosts_file(pod_name: str, pod_ip: str) -> str:
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{pod_ip}\t{pod_name}\n"


def node_wan_rules(net: ClusterNetwork) -> str:
    """`iptables-restore` input for a cluster's node namespace once it is on the wan.

    The node forwards its pods' TCP to gateways' ports only (never to other
    nodes, so no pod reaches another cluster's link endpoint) and masquerades it
    behind its own wan address, which is what lets pod networks overlap. From
    the wan, the node accepts new connections only to its link API, and only on
    its wan address; its own pods may not open that port either. Bridged pod-to-pod
    traffic is accepted explicitly in case the host has br_netfilter loaded.
    """
    return (
        "*filter\n"
        ":INPUT ACCEPT [0:0]\n"
        ":FORWARD DROP [0:0]\n"
        ":OUTPUT ACCEPT [0:0]\n"
        f"-A INPUT -i {NODE_WAN_IF} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
        f"-A INPUT -i {NODE_WAN_IF} -d {net.wan_ip} -p tcp --dport {LINK_API_PORT} -j ACCEPT\n"
        f"-A INPUT -i {NODE_WAN_IF} -j DROP\n"
        f"-A INPUT -p tcp --dport {LINK_API_PORT} -j DROP\n"
        "-A FORWARD -i br0 -o br0 -j ACCEPT\n"
        f"-A FORWARD -i {NODE_WAN_IF} -o br0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n"
        f"-A FORWARD -i br0 -o {NODE_WAN_IF} -s {net.pod_cidr} -d {WAN_GATEWAYS} -p tcp"
        f" -m multiport --dports {GATEWAY_WAN_PORTS} -j ACCEPT\n"
        "COMMIT\n"
        "*nat\n"
        ":PREROUTING ACCEPT [0:0]\n"
        ":INPUT ACCEPT [0:0]\n"
        ":OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\n"
        f"-A POSTROUTING -s {net.pod_cidr} -o {NODE_WAN_IF} -j MASQUERADE\n"
        "COMMIT\n"
    )
