"""What a sidecar's Envoy admin API says, as plain values: pure parsers of its JSON pages.

Each parser takes the body of one admin page and raises `AdminFormatError`, naming
the page, when the body is not what that page serves. They keep everything a
page holds that viz reads, so one scrape serves `edges` and the golden metrics alike.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from isthmus.xds.translate.clusters import ENDPOINT_METADATA_KEY
from isthmus.xds.translate.tls import IDENTITY_FIELD, SOCKET_MATCH_KEY

CLUSTERS = "/clusters?format=json"
CERTS = "/certs"
# EDS as the sidecar holds it, with each endpoint's metadata (its pod, the identity it must present).
ENDPOINTS = "/config_dump?resource=dynamic_endpoint_configs&include_eds"


def stats_path(pattern: str) -> str:
    """The counters and gauges whose names match the (RE2) `pattern`; never-written ones left out."""
    return "/stats?" + urllib.parse.urlencode({"format": "json", "usedonly": "", "filter": pattern})


class AdminFormatError(ValueError):
    """An admin page's body is not what that page serves (another Envoy version, or not Envoy)."""


@dataclass(frozen=True)
class Host:
    """One endpoint of an upstream cluster, with its counters since the sidecar started."""

    address: str
    port: int
    counters: Mapping[str, int]
    """cx_total, cx_connect_fail, rq_total, rq_success, rq_error, ...; absent means zero."""

    def count(self, name: str) -> int:
        return self.counters.get(name, 0)


@dataclass(frozen=True)
class UpstreamCluster:
    name: str
    stat_name: str
    """What its stats are named after (`alt_stat_name`, else the name)."""
    eds_name: str
    """The endpoint assignment it reads ("" for a cluster without EDS)."""
    hosts: tuple[Host, ...] = ()


@dataclass(frozen=True)
class EndpointMetadata:
    """What the control plane told the sidecar about one endpoint."""

    pod: str | None
    meshed: bool | None
    identity: str | None
    """The SPIFFE ID the sidecar requires the endpoint to present; None for plaintext."""


@dataclass(frozen=True)
class Certificates:
    """The identities of the workload certificates Envoy holds (more than one only mid-rotation)."""

    uris: tuple[str, ...] = field(default=())


def _json(text: str, page: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise AdminFormatError(f"{page}: the answer is not JSON") from None


def _int(value: Any) -> int:
    # The admin API writes 64-bit counters as JSON strings.
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def parse_clusters(text: str) -> list[UpstreamCluster]:
    """`/clusters?format=json`: every upstream cluster and its hosts' counters."""
    data = _json(text, CLUSTERS)
    if not isinstance(data, dict) or not isinstance(data.get("cluster_statuses", []), list):
        raise AdminFormatError(f"{CLUSTERS}: no cluster_statuses list")
    out = []
    for status in data.get("cluster_statuses", []):
        if not isinstance(status, dict) or "name" not in status:
            raise AdminFormatError(f"{CLUSTERS}: a cluster status without a name")
        hosts = []
        for host in status.get("host_statuses", []):
            address = host.get("address", {}).get("socket_address")
            if not address:
                continue  # a pipe (the xDS server's Unix socket) is nobody's pod
            counters = {s["name"]: _int(s.get("value")) for s in host.get("stats", []) if "name" in s}
            hosts.append(Host(str(address.get("address", "")), _int(address.get("port_value")), counters))
        name = str(status["name"])
        out.append(
            UpstreamCluster(
                name=name,
                stat_name=str(status.get("observability_name") or name),
                eds_name=str(status.get("eds_service_name", "")),
                hosts=tuple(hosts),
            )
        )
    return out


def parse_stats(text: str) -> dict[str, int]:
    """`/stats?format=json`: counters and gauges by name (histograms are left out)."""
    data = _json(text, "/stats")
    if not isinstance(data, dict) or not isinstance(data.get("stats"), list):
        raise AdminFormatError("/stats: no stats list")
    return {str(s["name"]): _int(s.get("value")) for s in data["stats"] if isinstance(s, dict) and "name" in s}


def parse_certs(text: str) -> Certificates:
    """`/certs`: the URI SANs of the certificates Envoy presents (not the CAs it trusts)."""
    data = _json(text, CERTS)
    if not isinstance(data, dict) or not isinstance(data.get("certificates", []), list):
        raise AdminFormatError(f"{CERTS}: no certificates list")
    uris: set[str] = set()
    for entry in data.get("certificates", []):
        for cert in entry.get("cert_chain", []) if isinstance(entry, dict) else []:
            uris.update(str(san["uri"]) for san in cert.get("subject_alt_names", []) if "uri" in san)
    return Certificates(tuple(sorted(uris)))


def parse_endpoints(text: str) -> dict[tuple[str, str, int], EndpointMetadata]:
    """The endpoint config dump: each endpoint's metadata by (assignment name, address, port)."""
    data = _json(text, "/config_dump (endpoints)")
    if not isinstance(data, dict) or not isinstance(data.get("configs", []), list):
        raise AdminFormatError("/config_dump (endpoints): no configs list")
    out: dict[tuple[str, str, int], EndpointMetadata] = {}
    for entry in data.get("configs", []):
        assignment = entry.get("endpoint_config", {}) if isinstance(entry, dict) else {}
        name = str(assignment.get("cluster_name", ""))
        for locality in assignment.get("endpoints", []):
            for lb in locality.get("lb_endpoints", []):
                address = lb.get("endpoint", {}).get("address", {}).get("socket_address")
                if not address:
                    continue
                meta = lb.get("metadata", {}).get("filter_metadata", {})
                ours, match = meta.get(ENDPOINT_METADATA_KEY, {}), meta.get(SOCKET_MATCH_KEY, {})
                key = (name, str(address.get("address", "")), _int(address.get("port_value")))
                out[key] = EndpointMetadata(
                    pod=ours.get("pod"),
                    meshed=ours.get("meshed"),
                    identity=match.get(IDENTITY_FIELD),
                )
    return out
