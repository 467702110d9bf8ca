"""State-of-the-World xDS protocol state of one ADS stream, with no I/O.

The stream feeds it requests (`on_request`) and asks what to send for the current snapshot
(`responses`); it never touches a socket, so each protocol rule can be tested line by line.

Rules (see the xDS protocol doc, "ACK/NACK and resource type instance version"):
- Listener and Cluster are wildcard types: every response carries the full set. The other types
  carry the resources the proxy named in its latest request.
- A response answers a pending request; after it, the type waits for the proxy's ACK/NACK, which is
  the next request. A request for named resources none of which exist waits until one does.
  A request whose `response_nonce` is not the latest nonce of its type is stale and ignored.
- Versions are content hashes of exactly what is sent, so a change to a resource the proxy did not
  subscribe to pushes nothing.
- A NACKed version is not sent again; the proxy keeps its last good config until the config changes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from isthmus.xds.cache import VersionedSnapshot
from isthmus.xds.snapshot import CLUSTER, LISTENER, TYPE_ORDER, content_version
from isthmus.xds.status import Nack, ProxyStatus, TypeStatus

WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})

Clock = Callable[[], float]


class RequestKind(enum.Enum):
    INITIAL = "initial"
    """First request of a type on this stream."""
    ACK = "ack"
    NACK = "nack"
    UPDATE = "update"
    """Current nonce but not an ACK: a subscription change while a NACKed version is outstanding."""
    STALE = "stale"
    """Nonce of an older response; ignored."""


@dataclass
class _TypeState:
    names: frozenset[str] = frozenset()
    pending: bool = False
    nonce: str | None = None
    sent_key: tuple[str, frozenset[str]] | None = None
    """(version, names) of the last answer, so an unchanged answer is not repeated."""
    sent_version: str | None = None
    acked_version: str | None = None
    nack: Nack | None = None
    last_push: float | None = None
    pushes: int = 0
    nacks: int = 0


class SotwStream:
    """Protocol state of one proxy's ADS stream."""

    def __init__(self, node_id: str, clock: Clock) -> None:
        self.node_id = node_id
        self._clock = clock
        self.connected_since = clock()
        self._types: dict[str, _TypeState] = {}
        self._nonces = 0

    def on_request(self, req: discovery_pb2.DiscoveryRequest) -> RequestKind:
        st = self._types.setdefault(req.type_url, _TypeState())
        if req.response_nonce and st.nonce is not None and req.response_nonce != st.nonce:
            return RequestKind.STALE
        st.names = frozenset() if req.type_url in WILDCARD_TYPES else frozenset(req.resource_names)
        st.pending = True
        if not req.response_nonce or st.nonce is None:
            # A nonce before we sent anything on this stream came from an earlier stream (a client that
            # keeps it across reconnects); treating it as stale would leave that proxy unanswered forever.
            return RequestKind.INITIAL
        if req.HasField("error_detail"):
            # The proxy's version_info is its last good version; what it rejected is what we sent.
            st.nack = Nack(st.sent_version or "", req.error_detail.message.strip(), self._clock())
            st.nacks += 1
            return RequestKind.NACK
        if req.version_info != st.sent_version:
            # Envoy repeats the nonce of a rejected response (without error_detail) when its
            # subscription changes; that does not accept the rejected version.
            return RequestKind.UPDATE
        st.acked_version = req.version_info
        st.nack = None
        return RequestKind.ACK

    def nack(self, type_url: str) -> Nack | None:
        st = self._types.get(type_url)
        return None if st is None else st.nack

    def responses(self, entry: VersionedSnapshot | None) -> list[discovery_pb2.DiscoveryResponse]:
        """Answers to pending requests that `entry` allows, in make-before-break order; records them as sent.

        With no snapshot yet, requests stay pending until there is one.
        """
        if entry is None:
            return []
        out = []
        for type_url in self._ordered_types():
            st = self._types[type_url]
            if not st.pending:
                continue
            resources, version = _select(entry, type_url, st.names)
            key = (version, st.names)
            if key == st.sent_key or (st.nack is not None and st.nack.version == version):
                continue
            if type_url not in WILDCARD_TYPES and not resources:
                # Nothing it names exists (or it names nothing): the request waits. Remembering the key makes
                # the resources' arrival, or a resubscription after Envoy dropped them, get an answer.
                st.sent_key = key
                continue
            self._nonces += 1
            nonce = str(self._nonces)
            out.append(_response(type_url, version, nonce, resources))
            st.pending = False
            st.nonce = nonce
            st.sent_key = key
            st.sent_version = version
            st.last_push = self._clock()
            st.pushes += 1
        return out

    def status(self, has_snapshot: bool) -> ProxyStatus:
        types = tuple(
            TypeStatus(
                type_url=t,
                wildcard=t in WILDCARD_TYPES,
                resource_names=tuple(sorted(st.names)),
                sent_version=st.sent_version,
                acked_version=st.acked_version,
                nack=st.nack,
                last_push=st.last_push,
                pushes=st.pushes,
                nacks=st.nacks,
            )
            for t in self._ordered_types()
            for st in (self._types[t],)
        )
        return ProxyStatus(self.node_id, self.connected_since, types, has_snapshot)

    def _ordered_types(self) -> list[str]:
        known = [t for t in TYPE_ORDER if t in self._types]
        return known + sorted(t for t in self._types if t not in TYPE_ORDER)


def _select(entry: VersionedSnapshot, type_url: str, names: frozenset[str]) -> tuple[Mapping[str, Message], str]:
    """The resources to send for a subscription, and the content version of exactly those."""
    everything = entry.snapshot.of_type(type_url)
    if type_url in WILDCARD_TYPES or names.issuperset(everything):
        return everything, entry.version(type_url)
    chosen = {n: everything[n] for n in names if n in everything}
    return chosen, content_version(chosen)


def _response(
    type_url: str, version: str, nonce: str, resources: Mapping[str, Message]
) -> discovery_pb2.DiscoveryResponse:
    packed = []
    for name in sorted(resources):
        a = any_pb2.Any()
        a.Pack(resources[name])
        packed.append(a)
    return discovery_pb2.DiscoveryResponse(version_info=version, type_url=type_url, nonce=nonce, resources=packed)
