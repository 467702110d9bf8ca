"""The local platform's address plan (pure): which addresses a cluster, its pods and services get.

Each cluster is its own network namespace with one bridge, so clusters never
see each other's pods; the plan still gives each cluster distinct ranges by
default so addresses in logs say which cluster they belong to.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

CLUSTER_DOMAIN = "cluster.local"
MAX_CLUSTERS = 32


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
    pods = ipaddress.IPv4Network(pod_cidr or f"10.{16 + index}.0.0/16")
    return ClusterNetwork(
        name=name,
        index=index,
        pod_cidr=pods,
        service_cidr=ipaddress.IPv4Network(f"10.{96 + index}.0.0/16"),
    )


def veth_name(cluster_index: int, pod_slot: int) -> str:
    """Host-side veth name; Linux allows 15 characters."""
    return f"ve{cluster_index}p{pod_slot}"


def resolv_conf(net: ClusterNetwork, namespace: str) -> str:
    search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    return f"nameserver {net.node_ip}\nsearch {search}\noptions ndots:5 timeout:1 attempts:2\n"


def hosts_file(pod_name: str, pod_ip: str) -> str:
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{pod_ip}\t{pod_name}\n"
