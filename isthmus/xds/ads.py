"""The Aggregated Discovery Service (State of the World over gRPC) that serves each proxy its `Snapshot`.

The stream handler never builds config: it reads the `SnapshotCache`, and `SotwStream` decides what to
send. This module only moves messages between the socket and that state.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
import weakref
from bisect import bisect_left
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import MappingProxyType

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from isthmus.xds.cache import SnapshotCache
from isthmus.xds.sotw import Clock, RequestKind, SotwStream
from isthmus.xds.status import AdsStatus, short_type

log = logging.getLogger(__name__)

Request = discovery_pb2.DiscoveryRequest
Response = discovery_pb2.DiscoveryResponse

# Envoy never pings its xDS server; server-side keepalive is how a proxy that vanished without closing
# its TCP connection (node lost, network partition) stops showing as connected.
_SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # gRPC sets SO_REUSEPORT by default: a second control plane on the same port would silently get
    # half of the proxies. Fail the bind instead.
    ("grpc.so_reuseport", 0),
]
# Upper bounds (seconds) of the push-to-ACK histogram: how long proxies take to apply config.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class PushToAck:
    """Seconds from sending a config version to the proxy's ACK of it, since the server started."""

    buckets: tuple[tuple[float, int], ...]
    """(upper bound, ACKs that took at most that long), cumulative, ending with +inf."""
    total: float
    """Sum of all the seconds."""


class AdsServicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Serves snapshots from `cache`; tracks every connected stream for `status()`."""

    def __init__(self, cache: SnapshotCache, clock: Clock = time.time) -> None:
        self._cache = cache
        self._clock = clock
        self._streams: dict[int, SotwStream] = {}
        self._wakes: dict[int, asyncio.Event] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._pushes: Counter[str] = Counter()
        self._nacks: Counter[str] = Counter()
        self._ack_counts = [0] * (len(ACK_BUCKETS) + 1)
        self._ack_seconds = 0.0
        # The nonce of the last ACK timed per stream and type: a proxy re-sends it when it changes
        # its subscription, and that is no new ACK.
        self._timed: weakref.WeakKeyDictionary[SotwStream, dict[str, str]] = weakref.WeakKeyDictionary()

    def status(self) -> AdsStatus:
        proxies = tuple(
            s.status(has_snapshot=self._cache.get_versioned(s.node_id) is not None)
            for s in sorted(self._streams.values(), key=lambda s: (s.node_id, s.connected_since))
        )
        return AdsStatus(proxies, MappingProxyType(dict(self._pushes)), MappingProxyType(dict(self._nacks)))

    def push_to_ack(self) -> PushToAck:
        running, buckets = 0, []
        for bound, count in zip((*ACK_BUCKETS, float("inf")), self._ack_counts, strict=True):
            running += count
            buckets.append((bound, running))
        return PushToAck(tuple(buckets), self._ack_seconds)

    def _time_ack(self, state: SotwStream, req: Request) -> None:
        timed = self._timed.setdefault(state, {})
        if timed.get(req.type_url) == req.response_nonce:
            return
        sent = state.status(has_snapshot=True).type(req.type_url)
        pushed = sent.last_push if sent else None
        if pushed is None:
            return
        timed[req.type_url] = req.response_nonce
        seconds = max(0.0, self._clock() - pushed)
        self._ack_counts[bisect_left(ACK_BUCKETS, seconds)] += 1
        self._ack_seconds += seconds

    def close_streams(self) -> None:
        """End every stream cleanly (status OK) so a graceful server stop need not wait out its grace."""
        self._closing = True
        for wake in self._wakes.values():
            wake.set()

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[Request], context: grpc.aio.ServicerContext[Request, Response]
    ) -> AsyncIterator[Response]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None:
            return
        node_id = first.node.id
        if not node_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first DiscoveryRequest must carry node.id")
        stream_id = next(self._ids)
        state = SotwStream(node_id, self._clock)
        wake = asyncio.Event()
        self._streams[stream_id] = state
        self._wakes[stream_id] = wake
        log.info("proxy %s connected (%s)", node_id, context.peer())
        self._on_request(state, first)
        wake.set()
        reader = asyncio.create_task(self._read(requests, state, wake), name=f"ads-read-{node_id}")
        try:
            with self._cache.watch(node_id, wake.set):
                while True:
                    await wake.wait()
                    wake.clear()
                    if reader.done():
                        reader.result()  # re-raises a read failure; otherwise the proxy half-closed
                        return
                    if self._closing:
                        return
                    for response in state.responses(self._cache.get_versioned(node_id)):
                        self._pushes[response.type_url] += 1
                        log.debug(
                            "push %s %s version %s (%d resources) to %s",
                            short_type(response.type_url),
                            response.nonce,
                            response.version_info,
                            len(response.resources),
                            node_id,
                        )
                        yield response
        finally:
            reader.cancel()
            del self._streams[stream_id]
            del self._wakes[stream_id]
            log.info("proxy %s disconnected", node_id)

    async def DeltaAggregatedResources(
        self, request_iterator: AsyncIterator[object], context: grpc.aio.ServicerContext[object, object]
    ) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "isthmus serves State-of-the-World ADS only; set ads_config.api_type to GRPC, not DELTA_GRPC",
        )

    async def _read(self, requests: AsyncIterator[Request], state: SotwStream, wake: asyncio.Event) -> None:
        try:
            async for req in requests:
                self._on_request(state, req)
                wake.set()
        finally:
            wake.set()  # let the writer notice that the proxy is gone

    def _on_request(self, state: SotwStream, req: Request) -> None:
        kind = state.on_request(req)
        if kind is RequestKind.NACK:
            self._nacks[req.type_url] += 1
            nack = state.nack(req.type_url)
            message = " ".join((nack.message if nack else "").split())
            log.warning(
                "proxy %s rejected %s version %s, keeping its last good version %s: %s",
                state.node_id,
                short_type(req.type_url),
                nack.version if nack else "?",
                req.version_info or "(none)",
                message,
            )
        elif kind is RequestKind.ACK:
            self._time_ack(state, req)
        elif kind is RequestKind.STALE:
            log.debug("ignoring stale %s request from %s", short_type(req.type_url), state.node_id)


@dataclass
class AdsServer:
    """A running ADS server: its address, its status, and a graceful stop."""

    grpc_server: grpc.aio.Server
    servicer: AdsServicer
    address: str
    """Where it listens, with the real port if the requested one was 0."""

    def status(self) -> AdsStatus:
        return self.servicer.status()

    def push_to_ack(self) -> PushToAck:
        return self.servicer.push_to_ack()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, end every stream cleanly (proxies keep their config and reconnect), then shut down."""
        self.servicer.close_streams()
        await self.grpc_server.stop(grace)


async def start_ads_server(cache: SnapshotCache, address: str, clock: Clock = time.time) -> AdsServer:
    """Serve ADS on `address`: "unix:/abs/path.sock" (the local platform) or "host:port" (port may be 0)."""
    if address.startswith("unix:"):
        _refuse_live_socket(address.removeprefix("unix:"))
    servicer = AdsServicer(cache, clock)
    server = grpc.aio.server(options=_SERVER_OPTIONS)
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as e:
        raise OSError(f"ADS server cannot listen on {address}: {e}") from e
    if address.startswith(("unix:", "unix-abstract:")):
        bound = address
    else:
        if port == 0:
            raise OSError(f"ADS server cannot listen on {address}")
        bound = f"{address.rsplit(':', 1)[0]}:{port}"
    await server.start()
    log.info("ADS server listening on %s", bound)
    return AdsServer(server, servicer, bound)


def _refuse_live_socket(path: str) -> None:
    """gRPC unlinks whatever is at a Unix socket path before binding, even a running server's socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(path)
        except OSError:
            return  # nothing there, or a stale file left by a crash: safe to replace
    raise OSError(f"another server is already listening on unix:{path}; stop it first")
