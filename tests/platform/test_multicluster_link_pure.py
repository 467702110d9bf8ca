"""The platform's side of links, without namespaces: credentials, what the link API tells, the node's
firewall for it, and the guard on writes made for a link."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isthmus.model.index import ClusterState
from isthmus.model.manifests import dump_resource
from isthmus.model.resources import (
    ClusterSettings,
    Namespace,
    ObjectMeta,
    Pod,
    Service,
    ServiceAddress,
    ServicePort,
    resource_key,
)
from isthmus.multicluster.mirrors import ExportedService, RemoteGateway, mirror_of
from isthmus.platform.local.apply import ApplyError
from isthmus.platform.local.link_credentials import CredentialRefused, CredentialStore, credential_id
from isthmus.platform.local.link_exports import changes, snapshot, view
from isthmus.platform.local.link_writes import plan_link_apply, plan_link_delete
from isthmus.platform.local.netplan import node_wan_rules, plan_cluster


def store(tmp_path: Path, cluster: str) -> CredentialStore:
    return CredentialStore(cluster, tmp_path / cluster / "link.key", tmp_path / cluster / "links.json")


def test_a_credential_is_accepted_until_revoked(tmp_path: Path) -> None:
    east = store(tmp_path, "east")
    credential = east.issue("west")
    assert east.verify(credential, "west").cluster == "west"
    found = credential_id(credential)
    assert found is not None and east.revoke(found) is not None
    with pytest.raises(CredentialRefused, match="revoked"):
        east.verify(credential, "west")
    assert east.revoke(found) is None


def test_issuing_again_for_a_cluster_replaces_its_credential(tmp_path: Path) -> None:
    east = store(tmp_path, "east")
    old, north = east.issue("west"), east.issue("north")
    new = east.issue("west")
    east.verify(new, "west")
    east.verify(north, "north")
    with pytest.raises(CredentialRefused, match="revoked"):
        east.verify(old, "west")
    assert sorted(i.cluster for i in east.issued()) == ["north", "west"]


@pytest.mark.parametrize(
    ("presented", "claimed", "message"),
    [
        pytest.param("garbage", "west", "not an Isthmus link credential", id="garbage"),
        pytest.param("isthmus-link.v1.e30.AAAA", "west", "not issued by cluster east", id="forged"),
        pytest.param("issued-by-north", "west", "not issued by cluster east", id="another-remote"),
        pytest.param("altered", "west", "not issued by cluster east", id="altered"),
        pytest.param("genuine", "north", "issued to cluster west, not north", id="claimed-by-another"),
    ],
)
def test_anything_but_a_genuine_current_credential_is_refused(
    tmp_path: Path, presented: str, claimed: str, message: str
) -> None:
    east, north = store(tmp_path, "east"), store(tmp_path, "north")
    genuine = east.issue("west")
    credential = {
        "issued-by-north": north.issue("west"),
        "altered": genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"),
        "genuine": genuine,
    }.get(presented, presented)
    with pytest.raises(CredentialRefused, match=message) as info:
        east.verify(credential, claimed)
    assert genuine not in str(info.value)


def test_the_key_and_the_list_are_private_files(tmp_path: Path) -> None:
    east = store(tmp_path, "east")
    east.issue("west")
    assert east.key_path.stat().st_mode & 0o777 == 0o600
    assert east.list_path.stat().st_mode & 0o777 == 0o600
    assert json.loads(east.list_path.read_text())["credentials"][0]["cluster"] == "west"


ID = "spiffe://cluster.local/ns/shop/sa/api"


def _state(*services: Service, api_pods: int = 1) -> ClusterState:
    pods = tuple(
        Pod(f"api-{i}", "shop", "east", f"10.17.1.{i}", (("app", "api"),), (), "api", "api") for i in range(api_pods)
    )
    return ClusterState(
        ClusterSettings("east"),
        tuple(ServiceAddress(s, f"10.97.0.{10 + i}", "east") for i, s in enumerate(services)),
        pods,
    )


EXPORTED = Service(
    ObjectMeta("api", "shop", labels=(("mirror.isthmus.io/exported", "true"),)),
    (("app", "api"),),
    (ServicePort(80, 8080, "http"), ServicePort(53, 53, "dns", "UDP")),
)
HIDDEN = Service(ObjectMeta("hidden", "shop"), (("app", "api"),), (ServicePort(80, 8080),))
A_MIRROR = Service(
    ObjectMeta(
        "db-north",
        "shop",
        labels=(
            ("mirror.isthmus.io/cluster-name", "north"),
            ("mirror.isthmus.io/exported", "true"),
            ("mirror.isthmus.io/mirrored-service", "true"),
        ),
    ),
    (),
    (ServicePort(5432, 5432),),
)


def test_the_link_api_tells_exactly_the_exports_with_their_identities() -> None:
    current = view(_state(EXPORTED, HIDDEN, A_MIRROR), "172.31.255.129")
    first = snapshot("east", current)
    assert [(e["namespace"], e["name"]) for e in first["exports"]] == [("shop", "api")]  # no mirror re-exported
    (api,) = first["exports"]
    assert api["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert api["identities"] == [ID]
    assert first["gateway"]["address"] == "172.31.255.129" and first["gateway"]["port"] == 4143
    assert first["gateway"]["installed"] is False


def test_a_watch_sends_only_what_changed() -> None:
    before = view(_state(EXPORTED), "172.31.255.129")
    assert changes(before, before) == []
    more_ports = Service(EXPORTED.meta, EXPORTED.selector, (*EXPORTED.ports, ServicePort(8443, 8443, "https")))
    (changed,) = changes(before, view(_state(more_ports), "172.31.255.129"))
    assert changed["type"] == "exported" and [p["port"] for p in changed["export"]["ports"]] == [80, 8443]
    (gone,) = changes(before, view(_state(HIDDEN), "172.31.255.129"))
    assert gone == {"ok": True, "type": "unexported", "namespace": "shop", "name": "api"}
    no_pods = changes(before, view(_state(EXPORTED, api_pods=0), "172.31.255.129"))
    assert no_pods[0]["export"]["identities"] == []


def test_the_node_opens_only_the_link_api_to_the_wan_and_not_to_its_pods() -> None:
    net = plan_cluster("east", 1)
    rules = node_wan_rules(net).splitlines()
    accept = f"-A INPUT -i wan0 -d {net.wan_ip} -p tcp --dport 6443 -j ACCEPT"
    drop_wan, drop_pods = "-A INPUT -i wan0 -j DROP", "-A INPUT -p tcp --dport 6443 -j DROP"
    assert rules.index(accept) < rules.index(drop_wan) < rules.index(drop_pods)
    assert [r for r in rules if r.startswith("-A INPUT") and "ACCEPT" in r and "ESTABLISHED" not in r] == [accept]


GATEWAY = RemoteGateway("172.31.255.129", 4143, "spiffe://cluster.local/ns/isthmus-multicluster/sa/isthmus-gateway")
MIRROR = mirror_of(ExportedService(EXPORTED, (ID,)), "east", GATEWAY)
USERS = Service(ObjectMeta("api-east", "shop"), (("app", "mine"),), (ServicePort(80, 8080),))


def _text(*resources: Service | Namespace) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [dump_resource(r) for r in resources]})


def _objects(*resources: Service | Namespace) -> dict[tuple[str, str, str], Service | Namespace]:
    return {resource_key(r): r for r in resources}


def test_a_link_writes_its_mirrors_and_creates_a_missing_namespace_without_touching_an_existing_one() -> None:
    shop = Namespace(ObjectMeta("shop", "", annotations=(("team", "a"),)))
    created = Namespace(ObjectMeta("shop", "", labels=(("mirror.isthmus.io/cluster-name", "east"),)))
    plan = plan_link_apply(_objects(), _text(created, MIRROR), "t", "east")
    assert plan.put == (created, MIRROR)
    plan = plan_link_apply(_objects(shop), _text(created, MIRROR), "t", "east")
    assert plan.put == (MIRROR,)  # the user's namespace keeps its annotations


@pytest.mark.parametrize(
    ("current", "written", "message"),
    [
        pytest.param((USERS,), (MIRROR,), "exists and is not cluster east's mirror", id="users-service"),
        pytest.param((), (USERS,), "is not a mirror of cluster east", id="not-a-mirror"),
        pytest.param((), (A_MIRROR,), "is not a mirror of cluster east", id="another-links-mirror"),
    ],
)
def test_a_link_never_writes_anything_but_its_own_mirrors(
    current: tuple[Service, ...], written: tuple[Service, ...], message: str
) -> None:
    shop = Namespace(ObjectMeta("shop", ""))
    with pytest.raises(ApplyError, match=message):
        plan_link_apply(_objects(shop, *current), _text(*written), "t", "east")


def test_a_link_deletes_only_its_own_mirrors() -> None:
    assert plan_link_delete(_objects(MIRROR), _text(MIRROR), "t", "east").delete == (MIRROR,)
    assert plan_link_delete(_objects(), _text(MIRROR), "t", "east").delete == ()  # already gone
    with pytest.raises(ApplyError, match="deletes only its own mirrors"):
        plan_link_delete(_objects(USERS), _text(MIRROR), "t", "east")
