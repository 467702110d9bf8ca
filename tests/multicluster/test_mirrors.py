"""Mirror Services made from a linked cluster's exports: what they carry, that the caller's
translation reads them back as the same target, and that a user's Service is never replaced."""

from __future__ import annotations

import pytest

from isthmus.model.resources import ObjectMeta, Service, ServiceAddress, ServicePort
from isthmus.multicluster.errors import MirrorError
from isthmus.multicluster.mirrors import (
    ExportedService,
    RemoteGateway,
    action_for,
    mirror_name,
    mirror_of,
    orphans,
)
from isthmus.xds.translate.remote import remote_target

GATEWAY = RemoteGateway("172.31.255.130", 4143, "spiffe://cluster.local/ns/isthmus-multicluster/sa/isthmus-gateway")
API_ID = "spiffe://cluster.local/ns/shop/sa/api"
API = Service(
    ObjectMeta("api", "shop", labels=(("mirror.isthmus.io/exported", "true"),)),
    selector=(("app", "api"),),
    ports=(ServicePort(80, "http", "http"), ServicePort(5432, 5432), ServicePort(53, 53, protocol="UDP")),
)
EXPORT = ExportedService(API, (API_ID, API_ID), frozenset({5432, 9999}))


def test_a_mirror_reads_back_as_the_export_behind_the_gateway() -> None:
    svc = mirror_of(EXPORT, "east", GATEWAY)
    assert (svc.meta.name, svc.meta.namespace, svc.selector) == ("api-east", "shop", ())
    assert [(p.port, p.target_port) for p in svc.ports] == [(80, 80), (5432, 5432)]  # TCP only
    target = remote_target(ServiceAddress(svc, "10.96.0.50", "west"))
    assert target is not None
    assert (target.service, target.namespace, target.cluster_name) == ("api", "shop", "east")
    assert (target.gateway_ip, target.gateway_port, target.gateway_identity) == (GATEWAY.ip, 4143, GATEWAY.identity)
    assert target.identities == (API_ID,)
    assert target.opaque_ports == {5432}


def test_an_export_without_meshed_endpoints_is_not_mirrored_yet() -> None:
    with pytest.raises(MirrorError, match="no meshed endpoints"):
        mirror_of(ExportedService(API, ()), "east", GATEWAY)


def test_a_name_too_long_for_dns_is_refused() -> None:
    with pytest.raises(MirrorError, match="longer than 63"):
        mirror_name("a" * 60, "east")


USERS = Service(ObjectMeta("api-east", "shop"), selector=(("app", "mine"),), ports=(ServicePort(80, 8080),))
MIRROR = mirror_of(EXPORT, "east", GATEWAY)
NORTHS = mirror_of(EXPORT, "north", GATEWAY)
OLD = mirror_of(ExportedService(API, (API_ID,), frozenset()), "east", GATEWAY)


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param(None, "create", id="nothing-there"),
        pytest.param(MIRROR, "keep", id="already-right"),
        pytest.param(OLD, "update", id="port-became-opaque"),
        pytest.param(USERS, "conflict", id="users-service"),
        pytest.param(
            Service(ObjectMeta("api-east", "shop", NORTHS.meta.labels), (), ()), "conflict", id="another-links-mirror"
        ),
    ],
)
def test_what_to_do_with_the_service_in_the_mirrors_place(existing: Service | None, expected: str) -> None:
    assert action_for(existing, MIRROR, "east") == expected


def test_only_this_links_mirrors_without_an_export_are_orphans() -> None:
    gone = mirror_of(
        ExportedService(Service(ObjectMeta("db", "shop"), (), (ServicePort(5432, 5432),)), (API_ID,)), "east", GATEWAY
    )
    assert orphans([MIRROR, gone, USERS, NORTHS], [MIRROR], "east") == [gone]
