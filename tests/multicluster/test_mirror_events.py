"""The service mirror's decisions, event by event: export, change, unexport, resync, unlink,
and a user's Service of the mirror's name left alone."""

from __future__ import annotations

from isthmus.model.resources import ObjectMeta, Service, ServicePort
from isthmus.multicluster.mirror_events import (
    DeleteMirror,
    GatewayHealth,
    Link,
    LinkRemoved,
    PutMirror,
    Refused,
    Resync,
    ServiceExported,
    ServiceUnexported,
    decide,
)
from isthmus.multicluster.mirrors import ExportedService, RemoteGateway, mirror_of

LINK = Link(
    "east", RemoteGateway("172.31.255.130", 4143, "spiffe://cluster.local/ns/isthmus-multicluster/sa/isthmus-gateway")
)
ID = "spiffe://cluster.local/ns/shop/sa/default"


def export(name: str, *ports: int) -> ExportedService:
    svc = Service(ObjectMeta(name, "shop"), (("app", name),), tuple(ServicePort(p, p) for p in ports))
    return ExportedService(svc, (ID,))


API, DB = export("api", 80), export("db", 5432)
API_MIRROR, DB_MIRROR = mirror_of(API, "east", LINK.gateway), mirror_of(DB, "east", LINK.gateway)
USERS_API_EAST = Service(ObjectMeta("api-east", "shop"), (("app", "mine"),), (ServicePort(80, 8080),))
NORTH_DB = mirror_of(DB, "north", LINK.gateway)


def test_an_export_is_mirrored_once() -> None:
    assert decide(ServiceExported(API), LINK, []) == [PutMirror(API_MIRROR)]
    assert decide(ServiceExported(API), LINK, [API_MIRROR]) == []


def test_a_port_change_updates_the_mirror() -> None:
    changed = export("api", 80, 8080)
    assert decide(ServiceExported(changed), LINK, [API_MIRROR]) == [PutMirror(mirror_of(changed, "east", LINK.gateway))]


def test_a_users_service_is_never_overwritten_nor_deleted() -> None:
    (refused,) = decide(ServiceExported(API), LINK, [USERS_API_EAST])
    assert isinstance(refused, Refused) and "not this link's mirror" in refused.reason
    assert decide(ServiceUnexported("shop", "api"), LINK, [USERS_API_EAST]) == []
    assert decide(LinkRemoved(), LINK, [USERS_API_EAST]) == []


def test_unexport_deletes_the_mirror() -> None:
    assert decide(ServiceUnexported("shop", "api"), LINK, [API_MIRROR]) == [DeleteMirror("shop", "api-east")]
    assert decide(ServiceUnexported("shop", "api"), LINK, []) == []


def test_resync_puts_what_is_missing_and_deletes_what_is_no_longer_exported() -> None:
    refused, *rest = decide(Resync((API,)), LINK, [DB_MIRROR, NORTH_DB, USERS_API_EAST])
    assert isinstance(refused, Refused) and refused.name == "api"  # the user's api-east is in the way
    assert rest == [DeleteMirror("shop", "db-east")]  # north's mirror and the user's service stay
    assert decide(Resync((API,)), LINK, [DB_MIRROR]) == [PutMirror(API_MIRROR), DeleteMirror("shop", "db-east")]
    assert decide(Resync((API, DB)), LINK, [API_MIRROR, DB_MIRROR]) == []


def test_unlink_removes_only_this_links_mirrors() -> None:
    assert decide(LinkRemoved(), LINK, [DB_MIRROR, API_MIRROR, NORTH_DB]) == [
        DeleteMirror("shop", "api-east"),
        DeleteMirror("shop", "db-east"),
    ]


def test_gateway_health_marks_and_clears_only_this_links_mirrors() -> None:
    dead = Link(LINK.cluster_name, LINK.gateway, alive=False)
    marked = decide(GatewayHealth(), dead, [API_MIRROR, NORTH_DB])
    assert marked == [PutMirror(mirror_of(API, "east", LINK.gateway, alive=False))]
    assert decide(GatewayHealth(), dead, [marked[0].service]) == []  # already marked: nothing to write
    assert decide(GatewayHealth(), LINK, [marked[0].service]) == [PutMirror(API_MIRROR)]
    assert decide(ServiceExported(DB), dead, []) == [PutMirror(mirror_of(DB, "east", LINK.gateway, alive=False))]
