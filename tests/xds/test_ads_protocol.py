"""SotwStream: the State-of-the-World protocol rules, without gRPC."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from isthmus.xds.cache import VersionedSnapshot
from isthmus.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot, content_version
from isthmus.xds.sotw import RequestKind, SotwStream
from isthmus.xds.status import TypeStatus

NODE = "west/default/web-1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def snapshot(
    clusters: tuple[str, ...] = ("a", "b"),
    listeners: tuple[str, ...] = ("l",),
    endpoints: dict[str, int] | None = None,
    routes: tuple[str, ...] = ("r",),
) -> VersionedSnapshot:
    """Endpoints map cluster name -> a port, so tests can change one assignment's content."""
    endpoints = {c: 80 for c in clusters} if endpoints is None else endpoints
    return VersionedSnapshot.of(
        Snapshot(
            {
                CLUSTER: {c: cluster_pb2.Cluster(name=c) for c in clusters},
                LISTENER: {n: listener_pb2.Listener(name=n) for n in listeners},
                ENDPOINT: {c: cla(c, port) for c, port in endpoints.items()},
                ROUTE: {r: route_pb2.RouteConfiguration(name=r) for r in routes},
            }
        )
    )


def cla(cluster: str, port: int) -> endpoint_pb2.ClusterLoadAssignment:
    lb = endpoint_components_pb2.LbEndpoint()
    lb.endpoint.address.socket_address.address = "127.0.0.1"
    lb.endpoint.address.socket_address.port_value = port
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[lb])]
    )


def req(
    type_url: str,
    names: tuple[str, ...] = (),
    *,
    version: str = "",
    nonce: str = "",
    error: str | None = None,
) -> discovery_pb2.DiscoveryRequest:
    r = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=names, version_info=version, response_nonce=nonce
    )
    r.node.id = NODE
    if error is not None:
        r.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return r


def ack(resp: discovery_pb2.DiscoveryResponse, names: tuple[str, ...] = ()) -> discovery_pb2.DiscoveryRequest:
    return req(resp.type_url, names, version=resp.version_info, nonce=resp.nonce)


def names_in(resp: discovery_pb2.DiscoveryResponse) -> list[str]:
    out = []
    for a in resp.resources:
        if resp.type_url == CLUSTER:
            m: cluster_pb2.Cluster | endpoint_pb2.ClusterLoadAssignment = cluster_pb2.Cluster()
            a.Unpack(m)
            out.append(m.name)
        elif resp.type_url == ENDPOINT:
            e = endpoint_pb2.ClusterLoadAssignment()
            a.Unpack(e)
            out.append(e.cluster_name)
        else:
            out.append(a.type_url)
    return out


def only(responses: list[discovery_pb2.DiscoveryResponse]) -> discovery_pb2.DiscoveryResponse:
    assert len(responses) == 1, responses
    return responses[0]


def type_of(stream: SotwStream, type_url: str) -> TypeStatus:
    t = stream.status(has_snapshot=True).type(type_url)
    assert t is not None
    return t


@pytest.fixture
def stream() -> SotwStream:
    return SotwStream(NODE, FakeClock())


def test_wildcard_type_gets_full_set_versioned_by_content(stream: SotwStream) -> None:
    snap = snapshot()
    assert stream.on_request(req(CLUSTER)) is RequestKind.INITIAL
    resp = only(stream.responses(snap))
    assert resp.type_url == CLUSTER
    assert names_in(resp) == ["a", "b"]
    assert resp.version_info == snap.snapshot.version(CLUSTER)
    assert all(a.type_url == CLUSTER for a in resp.resources)
    assert resp.nonce


def test_wildcard_type_ignores_resource_names(stream: SotwStream) -> None:
    stream.on_request(req(CLUSTER, ("*",)))
    assert names_in(only(stream.responses(snapshot()))) == ["a", "b"]


def test_requests_wait_for_a_snapshot(stream: SotwStream) -> None:
    stream.on_request(req(CLUSTER))
    assert stream.responses(None) == []
    assert stream.status(has_snapshot=False).in_sync is False
    assert only(stream.responses(snapshot())).type_url == CLUSTER


def test_ack_records_version_and_nothing_is_resent_while_unchanged(stream: SotwStream) -> None:
    snap = snapshot()
    stream.on_request(req(CLUSTER))
    resp = only(stream.responses(snap))
    assert stream.on_request(ack(resp)) is RequestKind.ACK
    assert stream.responses(snap) == []
    st = stream.status(has_snapshot=True)
    assert type_of(stream, CLUSTER).acked_version == resp.version_info
    assert st.in_sync
    # New content: the pending ACK request is answered.
    resp2 = only(stream.responses(snapshot(clusters=("a",))))
    assert resp2.version_info != resp.version_info
    assert resp2.nonce != resp.nonce


def test_nack_is_recorded_and_the_rejected_version_is_not_resent(stream: SotwStream) -> None:
    good, bad = snapshot(clusters=("a",)), snapshot(clusters=("a", "bad"))
    stream.on_request(req(CLUSTER))
    v1 = only(stream.responses(good))
    stream.on_request(ack(v1))
    v2 = only(stream.responses(bad))
    kind = stream.on_request(req(CLUSTER, version=v1.version_info, nonce=v2.nonce, error="bad cluster"))
    assert kind is RequestKind.NACK
    t = stream.status(has_snapshot=True).type(CLUSTER)
    assert t is not None
    assert (t.nack and t.nack.version, t.nack and t.nack.message) == (v2.version_info, "bad cluster")
    assert (t.sent_version, t.acked_version, t.nacks) == (v2.version_info, v1.version_info, 1)
    assert not t.in_sync
    # Same bad content, even as a fresh object: nothing.
    assert stream.responses(snapshot(clusters=("a", "bad"))) == []
    # Changed content is sent; its ACK clears the NACK.
    v3 = only(stream.responses(snapshot(clusters=("a", "fixed"))))
    assert stream.on_request(ack(v3)) is RequestKind.ACK
    assert stream.nack(CLUSTER) is None


def test_going_back_to_the_last_good_config_after_a_nack_is_sent(stream: SotwStream) -> None:
    good, bad = snapshot(clusters=("a",)), snapshot(clusters=("bad",))
    stream.on_request(req(CLUSTER))
    v1 = only(stream.responses(good))
    stream.on_request(ack(v1))
    v2 = only(stream.responses(bad))
    stream.on_request(req(CLUSTER, version=v1.version_info, nonce=v2.nonce, error="no"))
    back = only(stream.responses(good))
    assert back.version_info == v1.version_info


def test_subscription_change_after_nack_does_not_count_as_ack(stream: SotwStream) -> None:
    stream.on_request(req(ENDPOINT, ("a",)))
    v1 = only(stream.responses(snapshot()))
    stream.on_request(ack(v1, ("a",)))
    v2 = only(stream.responses(snapshot(endpoints={"a": 1, "b": 2})))
    stream.on_request(req(ENDPOINT, ("a",), version=v1.version_info, nonce=v2.nonce, error="bad"))
    # Envoy repeats the rejected response's nonce, with its last good version, when names change.
    kind = stream.on_request(req(ENDPOINT, ("a", "b"), version=v1.version_info, nonce=v2.nonce))
    assert kind is RequestKind.UPDATE
    assert stream.nack(ENDPOINT) is not None
    resp = only(stream.responses(snapshot(endpoints={"a": 1, "b": 2})))
    assert names_in(resp) == ["a", "b"]


def test_stale_nonce_is_ignored(stream: SotwStream) -> None:
    snap = snapshot()
    stream.on_request(req(ENDPOINT, ("a",)))
    v1 = only(stream.responses(snap))
    stream.on_request(ack(v1, ("a",)))
    v2 = only(stream.responses(snapshot(endpoints={"a": 1, "b": 1})))
    # A request still answering v1 (sent before v2 arrived) must not change the subscription.
    assert stream.on_request(ack(v1, ("a", "b"))) is RequestKind.STALE
    assert type_of(stream, ENDPOINT).resource_names == ("a",)
    assert stream.on_request(ack(v2, ("a",))) is RequestKind.ACK


def test_named_types_send_subscribed_resources_and_answer_subscription_changes(stream: SotwStream) -> None:
    snap = snapshot(clusters=("a", "b", "c"))
    stream.on_request(req(ENDPOINT, ("a", "missing")))
    v1 = only(stream.responses(snap))
    assert names_in(v1) == ["a"]
    assert v1.version_info == content_version({"a": snap.snapshot.of_type(ENDPOINT)["a"]})
    stream.on_request(ack(v1, ("a", "b")))
    v2 = only(stream.responses(snap))
    assert names_in(v2) == ["a", "b"]
    stream.on_request(ack(v2, ("a", "b")))
    # A change to an assignment this proxy did not subscribe to pushes nothing.
    assert stream.responses(snapshot(clusters=("a", "b", "c"), endpoints={"a": 80, "b": 80, "c": 9})) == []
    # All subscribed: the version is the type's version.
    stream.on_request(req(ENDPOINT, ("a", "b", "c"), version=v2.version_info, nonce=v2.nonce))
    assert only(stream.responses(snap)).version_info == snap.version(ENDPOINT)


def test_unsubscribe_all_sends_nothing_and_resubscribe_is_answered(stream: SotwStream) -> None:
    snap = snapshot()
    stream.on_request(req(ENDPOINT, ("a",)))
    v1 = only(stream.responses(snap))
    stream.on_request(ack(v1, ()))
    assert stream.responses(snap) == []
    stream.on_request(req(ENDPOINT, ("a",), version=v1.version_info, nonce=v1.nonce))
    assert names_in(only(stream.responses(snap))) == ["a"]


def test_several_pending_types_are_answered_make_before_break(stream: SotwStream) -> None:
    for t, names in [(ROUTE, ("r",)), (LISTENER, ()), (ENDPOINT, ("a",)), (CLUSTER, ())]:
        stream.on_request(req(t, names))
    order = [r.type_url for r in stream.responses(snapshot())]
    assert order == [CLUSTER, ENDPOINT, LISTENER, ROUTE]
    assert [t.type_url for t in stream.status(True).types] == order


def test_push_time_and_counts_use_the_clock() -> None:
    clock = FakeClock()
    stream = SotwStream(NODE, clock)
    stream.on_request(req(CLUSTER))
    clock.now = 1234.5
    stream.responses(snapshot())
    t = stream.status(True).type(CLUSTER)
    assert t is not None
    assert (t.last_push, t.pushes, stream.connected_since) == (1234.5, 1, 1000.0)


@pytest.mark.parametrize(
    "type_url",
    [pytest.param(CLUSTER, id="wildcard"), pytest.param(ENDPOINT, id="named")],
)
def test_identical_snapshot_pushes_nothing(stream: SotwStream, type_url: str) -> None:
    names = () if type_url == CLUSTER else ("a",)
    stream.on_request(req(type_url, names))
    v1 = only(stream.responses(snapshot()))
    stream.on_request(ack(v1, names))
    assert stream.responses(snapshot()) == []


def test_named_resources_that_do_not_exist_wait_until_they_do(stream: SotwStream) -> None:
    stream.on_request(req(ENDPOINT, ("later",)))
    assert stream.responses(snapshot()) == []
    assert type_of(stream, ENDPOINT).sent_version is None
    resp = only(stream.responses(snapshot(clusters=("a", "later"))))
    assert names_in(resp) == ["later"]


def test_a_named_type_subscribed_to_nothing_counts_as_in_sync(stream: SotwStream) -> None:
    # Envoy without EDS clusters still opens an EDS subscription with no names after reconnecting.
    stream.on_request(req(ENDPOINT, ()))
    assert stream.responses(snapshot()) == []
    assert stream.status(True).in_sync


def test_nack_message_is_kept_without_trailing_newline(stream: SotwStream) -> None:
    stream.on_request(req(CLUSTER))
    resp = only(stream.responses(snapshot()))
    stream.on_request(req(CLUSTER, nonce=resp.nonce, error="Error adding cluster(s) x: bad\n"))
    t = stream.status(True).type(CLUSTER)
    assert t is not None and t.nack is not None
    assert t.nack.message == "Error adding cluster(s) x: bad"
    assert t.acked_version is None and not t.in_sync


def test_a_nonce_from_an_earlier_stream_is_not_stale(stream: SotwStream) -> None:
    kind = stream.on_request(req(CLUSTER, version="v-old", nonce="17"))
    assert kind is RequestKind.INITIAL
    assert only(stream.responses(snapshot())).type_url == CLUSTER
