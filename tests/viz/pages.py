"""Envoy admin pages as a pod's sidecar would serve them, for tests of what viz reads.

The clusters and endpoints come from the config the translation stage builds for
that pod, so viz and the names and metadata it relies on cannot drift apart
unnoticed. Only the counters are the test's own. The page shapes follow pages
captured from the mesh's Envoy (samples/local_scrape.json): 64-bit counters as
strings in /clusters, numbers in /stats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from isthmus.model.index import ClusterState
from isthmus.model.resources import Pod
from isthmus.viz.admin import AdminReply, PodRef
from isthmus.viz.edges import EDGE_PATHS, EDGE_STATS
from isthmus.viz.envoy_admin import CERTS, CLUSTERS, ENDPOINTS
from isthmus.xds.snapshot import CLUSTER, ENDPOINT
from isthmus.xds.translate import build_sidecar

# (cluster name, endpoint IP) -> that host's counters (cx_total, rq_total, ...).
Traffic = Mapping[tuple[str, str], Mapping[str, int]]


def ref(pod: Pod) -> PodRef:
    return PodRef(pod.cluster, pod.namespace, pod.name)


def clusters_page(state: ClusterState, pod: Pod, traffic: Traffic) -> str:
    snap = build_sidecar(state, pod)
    assignments = {
        name: cla for name, cla in snap.of_type(ENDPOINT).items() if isinstance(cla, endpoint_pb2.ClusterLoadAssignment)
    }
    statuses: list[dict[str, object]] = []
    for name, cluster in sorted(snap.of_type(CLUSTER).items()):
        assert isinstance(cluster, cluster_pb2.Cluster)
        status: dict[str, object] = {"name": name, "observability_name": cluster.alt_stat_name or name}
        if cluster.type == cluster_pb2.Cluster.EDS:
            eds = cluster.eds_cluster_config.service_name
            status["eds_service_name"] = eds
            status["host_statuses"] = [
                _host(
                    lb.endpoint.address.socket_address,
                    traffic.get((name, lb.endpoint.address.socket_address.address), {}),
                )
                for locality in assignments[eds].endpoints
                for lb in locality.lb_endpoints
            ]
        statuses.append(status)
    # The xDS server's Unix socket is a host too; it is nobody's pod.
    statuses.append(
        {
            "name": "isthmus-xds",
            "observability_name": "isthmus-xds",
            "host_statuses": [
                {"address": {"pipe": {"path": "/run/ads.sock"}}, "stats": [{"name": "cx_total", "value": "1"}]}
            ],
        }
    )
    return json.dumps({"cluster_statuses": statuses})


def _host(address: Message, counters: Mapping[str, int]) -> dict[str, object]:
    socket_address = json_format.MessageToDict(address, preserving_proto_field_name=True)
    return {
        "address": {"socket_address": socket_address},
        # Envoy lists only the counters that moved, and gauges without a value when they are zero.
        "stats": [{"name": k, "value": str(v)} for k, v in counters.items() if v]
        + [{"type": "GAUGE", "name": "cx_active"}],
        "health_status": {"eds_health_status": "HEALTHY"},
        "weight": 1,
        "locality": {},
    }


def endpoints_page(state: ClusterState, pod: Pod) -> str:
    configs = [
        {
            "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump.DynamicEndpointConfig",
            "endpoint_config": {
                "@type": ENDPOINT,
                **json_format.MessageToDict(cla, preserving_proto_field_name=True),
            },
        }
        for _, cla in sorted(build_sidecar(state, pod).of_type(ENDPOINT).items())
    ]
    return json.dumps({"configs": configs})


def stats_page(counters: Mapping[str, int]) -> str:
    return json.dumps({"stats": [{"name": k, "value": v} for k, v in counters.items()]})


def certs_page(uris: Sequence[str]) -> str:
    chain = [{"path": "<inline>", "serial_number": "0a", "subject_alt_names": [{"uri": u} for u in uris]}]
    anchor = [{"path": "<inline>", "serial_number": "01", "subject_alt_names": []}]
    return json.dumps({"certificates": [{"ca_cert": anchor, "cert_chain": chain}] if uris else []})


def sidecar(
    state: ClusterState,
    pod: Pod,
    traffic: Traffic | None = None,
    stats: Mapping[str, int] | None = None,
    identities: Sequence[str] = (),
) -> AdminReply:
    """`pod`'s sidecar's answers to every page `edges` reads."""
    bodies = {
        CLUSTERS: clusters_page(state, pod, traffic or {}),
        CERTS: certs_page(identities),
        ENDPOINTS: endpoints_page(state, pod),
        EDGE_STATS: stats_page(stats or {}),
    }
    assert set(bodies) == set(EDGE_PATHS)
    return AdminReply(ref(pod), bodies)
