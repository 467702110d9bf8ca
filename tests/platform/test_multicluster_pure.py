"""The wan address plan and the node's forwarding rules (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from isthmus.platform.local.netplan import (
    MAX_CLUSTERS,
    WAN_CIDR,
    WAN_GATEWAYS,
    node_wan_rules,
    parse_pod_cidr,
    plan_cluster,
)
from isthmus.platform.local.pod_networks import PodNetworkError, parse_flags


def test_every_cluster_has_its_own_node_and_gateway_address_on_the_wan() -> None:
    nets = [plan_cluster(f"c{i}", i) for i in range(MAX_CLUSTERS)]
    addresses = [n.wan_ip for n in nets] + [n.gateway_wan_ip for n in nets]
    assert len(set(addresses)) == 2 * MAX_CLUSTERS
    assert all(ipaddress.IPv4Address(a) in WAN_CIDR for a in addresses)
    assert {n.gateway_wan_ip for n in nets} <= {str(a) for a in WAN_GATEWAYS}
    assert not any(ipaddress.IPv4Address(n.wan_ip) in WAN_GATEWAYS for n in nets)


def test_the_node_forwards_its_pods_to_gateway_ports_only_and_masquerades() -> None:
    rules = node_wan_rules(plan_cluster("east", 1, "10.16.0.0/16"))
    assert ":FORWARD DROP" in rules
    accepts = [r for r in rules.splitlines() if r.startswith("-A FORWARD") and "-o wan0" in r]
    assert accepts == [
        "-A FORWARD -i br0 -o wan0 -s 10.16.0.0/16 -d 172.31.255.128/27 -p tcp -m multiport --dports 4143,4191 -j ACCEPT"
    ]
    assert "-A INPUT -i wan0 -j DROP" in rules
    assert "-A POSTROUTING -s 10.16.0.0/16 -o wan0 -j MASQUERADE" in rules


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("10.16.0.0/16", None, id="default-of-another-cluster"),
        pytest.param("192.168.0.0/20", None, id="small-private"),
        pytest.param("nonsense", "not an IPv4 network", id="junk"),
        pytest.param("fd00::/64", "not an IPv4 network", id="ipv6"),
        pytest.param("172.31.0.0/16", "overlaps 172.31.255.0/24", id="wan"),
        pytest.param("10.0.0.0/8", "overlaps 10.96.0.0/11", id="services"),
        pytest.param("100.64.0.0/16", "must be private", id="cgnat"),
    ],
)
def test_pod_cidr_rules(value: str, problem: str | None) -> None:
    if problem is None:
        assert str(parse_pod_cidr(value)) == value
    else:
        with pytest.raises(ValueError, match=problem):
            parse_pod_cidr(value)


def test_pod_cidr_flags_name_clusters_of_this_up_once() -> None:
    assert parse_flags(["east=10.16.0.0/16"], ["west", "east"]) == {"east": "10.16.0.0/16"}
    with pytest.raises(PodNetworkError, match="given twice"):
        parse_flags(["east=10.16.0.0/16", "east=10.17.0.0/16"], ["east"])
