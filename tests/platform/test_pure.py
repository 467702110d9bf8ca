"""The local platform's pure decisions: address plan, DNS answers, redirect and service rules, apply plans."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from isthmus.model.errors import IsthmusError
from isthmus.model.index import ClusterState
from isthmus.model.resources import (
    ClusterSettings,
    ContainerPort,
    ObjectMeta,
    Pod,
    Service,
    ServiceAddress,
    ServicePort,
)
from isthmus.platform.local.apply import ApplyError, plan_apply, plan_delete
from isthmus.platform.local.dns import answer, service_names
from isthmus.platform.local.netns import mac_for
from isthmus.platform.local.netplan import plan_cluster, resolv_conf
from isthmus.platform.local.service_proxy import service_rules
from isthmus.proxy.redirect import iptables_rules


def test_address_plan() -> None:
    net = plan_cluster("west", 1)
    assert (net.node_ip, net.pod_ip(0), net.service_ip(0)) == ("10.17.0.1", "10.17.1.1", "10.97.0.10")
    assert plan_cluster("east", 2, "10.17.0.0/16").pod_cidr == net.pod_cidr  # overlapping pod networks are allowed
    with pytest.raises(ValueError, match="is full"):
        plan_cluster("tiny", 0, "10.1.0.0/23").pod_ip(255)
    assert "search shop.svc.cluster.local svc.cluster.local cluster.local" in resolv_conf(net, "shop")


def test_mac_follows_ip() -> None:
    assert mac_for("10.16.1.6") == "02:42:0a:10:01:06"


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "ip"),
    [
        pytest.param("web.default.svc.cluster.local", "A", RCODE.NOERROR, "10.96.0.10", id="a-record"),
        pytest.param("WEB.default.svc.cluster.local", "A", RCODE.NOERROR, "10.96.0.10", id="case-insensitive"),
        pytest.param("web.default.svc.cluster.local", "AAAA", RCODE.NOERROR, None, id="aaaa-empty"),
        pytest.param("nope.default.svc.cluster.local", "A", RCODE.NXDOMAIN, None, id="unknown"),
        pytest.param("example.com", "A", RCODE.REFUSED, None, id="outside-cluster-domain"),
    ],
)
def test_dns_answers(name: str, qtype: str, rcode: int, ip: str | None) -> None:
    names = service_names({("default", "web"): "10.96.0.10"})
    reply = DNSRecord.parse(answer(DNSRecord.question(name, qtype).pack(), names) or b"")
    assert reply.header.rcode == rcode
    assert [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A] == ([ip] if ip else [])


def test_dns_ignores_garbage() -> None:
    assert answer(b"\x00\x01garbage", {}) is None


def test_redirect_rules_let_the_proxy_and_the_node_through() -> None:
    rules = iptables_rules("10.16.0.1")
    lines = rules.splitlines()
    assert lines.index("-A ISTHMUS_OUTBOUND -m mark --mark 485 -j RETURN") < lines.index(
        "-A ISTHMUS_OUTBOUND -p tcp -j REDIRECT --to-ports 4140"
    )
    assert "-A ISTHMUS_INBOUND -s 10.16.0.1/32 -j RETURN" in lines
    assert "-A ISTHMUS_INBOUND -p tcp -j REDIRECT --to-ports 4143" in lines


def _state(pods: int) -> ClusterState:
    svc = Service(ObjectMeta("web"), (("app", "web"),), (ServicePort(80, "http", "http"),))
    return ClusterState(
        ClusterSettings("west"),
        (ServiceAddress(svc, "10.96.0.10", "west"),),
        tuple(
            Pod(
                f"web-{i}",
                "default",
                "west",
                f"10.16.1.{i + 1}",
                (("app", "web"),),
                (),
                "default",
                "web",
                (ContainerPort(8080, "http"),),
            )
            for i in range(pods)
        ),
    )


def test_service_rules_spread_evenly_over_ready_endpoints() -> None:
    rules = service_rules(_state(3)).splitlines()
    dnat = [r for r in rules if "DNAT" in r]
    assert dnat == [
        "-A ISTHMUS_SERVICES -d 10.96.0.10/32 -p tcp --dport 80 -m statistic --mode random --probability 0.333333 -j DNAT --to-destination 10.16.1.1:8080",
        "-A ISTHMUS_SERVICES -d 10.96.0.10/32 -p tcp --dport 80 -m statistic --mode random --probability 0.500000 -j DNAT --to-destination 10.16.1.2:8080",
        "-A ISTHMUS_SERVICES -d 10.96.0.10/32 -p tcp --dport 80 -j DNAT --to-destination 10.16.1.3:8080",
    ]
    assert not [r for r in service_rules(_state(0)).splitlines() if "DNAT" in r]


NS = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
SA = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: api, namespace: shop}\n"
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      serviceAccountName: api
      containers: [{name: app, command: [sleep, "1"]}]
"""


def test_apply_plan_reports_created_unchanged_configured() -> None:
    plan = plan_apply({}, "---\n".join([NS, SA, DEPLOY]), "f.yaml", None)
    assert plan.messages == ("namespace/shop created", "serviceaccount/api created", "deployment.apps/api created")
    current = {
        ("Namespace", "", "shop"): plan.put[0],
        ("ServiceAccount", "shop", "api"): plan.put[1],
        ("Deployment", "shop", "api"): plan.put[2],
    }
    again = plan_apply(current, "---\n".join([NS, SA, DEPLOY.replace("sleep", "env")]), "f.yaml", None)
    assert again.messages == (
        "namespace/shop unchanged",
        "serviceaccount/api unchanged",
        "deployment.apps/api configured",
    )
    assert len(again.put) == 1


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param(DEPLOY, 'namespace "shop" does not exist', id="missing-namespace"),
        pytest.param(
            NS + "---\n" + DEPLOY, 'serviceaccount "api" does not exist in namespace "shop"', id="missing-account"
        ),
        pytest.param(NS + "---\n" + NS, "already defined in document 1", id="duplicate"),
        pytest.param("# nothing\n", "no objects to apply", id="empty"),
    ],
)
def test_apply_refuses_broken_references(text: str, error: str) -> None:
    with pytest.raises(IsthmusError, match=error):
        plan_apply({}, text, "f.yaml", None)


def test_deleting_a_namespace_deletes_what_is_in_it() -> None:
    created = plan_apply({}, "---\n".join([NS, SA, DEPLOY]), "f.yaml", None).put
    current = {
        ("Namespace", "", "shop"): created[0],
        ("ServiceAccount", "shop", "api"): created[1],
        ("Deployment", "shop", "api"): created[2],
    }
    plan = plan_delete(current, NS, "f.yaml", None, ignore_not_found=False)
    assert set(plan.messages) == {"namespace/shop deleted", "serviceaccount/api deleted", "deployment.apps/api deleted"}
    with pytest.raises(ApplyError, match="not found"):
        plan_delete({}, NS, "f.yaml", None, ignore_not_found=False)
