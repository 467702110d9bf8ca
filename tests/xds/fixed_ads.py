"""Just enough State-of-the-World ADS to serve fixed snapshots, one per node, and record ACKs
and NACKs: for tests that run a real Envoy without the control plane."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Mapping
from concurrent import futures
from pathlib import Path

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from isthmus.xds.snapshot import CLUSTER, LISTENER, Snapshot
from isthmus.xds.translate.fragments import pack


class FixedAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, snapshots: Mapping[str, Snapshot]) -> None:
        self.snapshots = snapshots
        self.acked: dict[str, dict[str, str]] = {node: {} for node in snapshots}
        self.nacks: list[tuple[str, str, str]] = []
        self._nonces = itertools.count(1)
        self._lock = threading.Lock()

    def StreamAggregatedResources(
        self, request_iterator: Iterator[discovery_pb2.DiscoveryRequest], context: grpc.ServicerContext
    ) -> Iterator[discovery_pb2.DiscoveryResponse]:
        answered: dict[str, tuple[str, ...]] = {}
        node = ""
        for req in request_iterator:
            node = req.node.id or node  # Envoy names itself in the first request only
            snap = self.snapshots[node]
            kind = req.type_url
            with self._lock:
                if req.HasField("error_detail"):
                    self.nacks.append((node, kind, req.error_detail.message))
                elif req.response_nonce and req.version_info == snap.version(kind):
                    self.acked[node][kind] = req.version_info
            names = tuple(sorted(req.resource_names))
            if answered.get(kind) == names:
                continue  # an ACK or NACK of what we sent: nothing new to say
            answered[kind] = names
            have = snap.of_type(kind)
            wildcard = kind in (CLUSTER, LISTENER)
            chosen = list(have.values()) if wildcard else [have[n] for n in names if n in have]
            yield discovery_pb2.DiscoveryResponse(
                version_info=snap.version(kind),
                type_url=kind,
                nonce=str(next(self._nonces)),
                resources=[pack(m) for m in chosen],
            )


def serve(ads: FixedAds, socket_path: Path) -> grpc.Server:
    """Started on a Unix socket; the caller stops it."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(ads, server)
    server.add_insecure_port(f"unix:{socket_path}")
    server.start()
    return server
