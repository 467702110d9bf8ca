"""The control plane's own metrics (xDS, identity, traffic collector) as Prometheus families. Pure.

Every series carries the cluster's name in `cluster`, so one Prometheus can scrape
every control plane of a mesh. Names follow Prometheus's conventions: counters end
in `_total`, durations are in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from isthmus.viz.collector import CollectorStats
from isthmus.viz.prometheus_text import Family, histogram, simple
from isthmus.xds.status import AdsStatus, short_type


@dataclass(frozen=True)
class ControlPlaneFigures:
    """Everything the control plane counts, read at one moment."""

    cluster: str
    ads: AdsStatus
    push_to_ack: tuple[tuple[float, int], ...]
    """(upper bound in seconds, cumulative ACKs), ending with +inf."""
    push_to_ack_seconds: float
    certificates_issued: int
    requests_refused: Mapping[int, int]
    """By HTTP status."""
    collector: CollectorStats


def families(f: ControlPlaneFigures) -> list[Family]:
    c = {"cluster": f.cluster}
    proxies = f.ads.proxies
    types = sorted(set(f.ads.pushes_total) | set(f.ads.nacks_total))
    return [
        simple("isthmus_xds_proxies_connected", "gauge", "Proxies with an open ADS stream.", [(c, len(proxies))]),
        simple(
            "isthmus_xds_proxies_in_sync",
            "gauge",
            "Connected proxies running the config they were last sent (pushed, ACKed, not rejected).",
            [(c, sum(1 for p in proxies if p.in_sync))],
        ),
        simple(
            "isthmus_xds_proxies_rejecting",
            "gauge",
            "Connected proxies whose last push of some resource type they rejected (NACK).",
            [(c, sum(1 for p in proxies if p.nacks))],
        ),
        simple(
            "isthmus_xds_pushes_total",
            "counter",
            "xDS responses sent to proxies, by resource type.",
            [({**c, "type": short_type(t)}, f.ads.pushes_total.get(t, 0)) for t in types],
        ),
        simple(
            "isthmus_xds_nacks_total",
            "counter",
            "xDS responses proxies rejected, by resource type.",
            [({**c, "type": short_type(t)}, f.ads.nacks_total.get(t, 0)) for t in types],
        ),
        histogram(
            "isthmus_xds_push_to_ack_seconds",
            "Time from sending a config version to a proxy until it ACKed that version.",
            c,
            f.push_to_ack,
            f.push_to_ack_seconds,
        ),
        simple(
            "isthmus_identity_certificates_issued_total",
            "counter",
            "Workload certificates the cluster's identity service signed.",
            [(c, f.certificates_issued)],
        ),
        simple(
            "isthmus_identity_requests_refused_total",
            "counter",
            "Certificate requests the identity service refused, by HTTP status.",
            [({**c, "status": str(status)}, n) for status, n in sorted(f.requests_refused.items())],
        ),
        simple(
            "isthmus_viz_sweeps_total",
            "counter",
            "Times the traffic collector read every sidecar.",
            [({**c, "result": "done"}, f.collector.sweeps), ({**c, "result": "failed"}, f.collector.failed_sweeps)],
        ),
        simple(
            "isthmus_viz_sweep_duration_seconds",
            "gauge",
            "How long the traffic collector's latest sweep took.",
            [(c, f.collector.last_sweep_seconds)],
        ),
        simple(
            "isthmus_viz_sidecars",
            "gauge",
            "Sidecars the latest sweep read, and those it could not read.",
            [({**c, "state": "read"}, f.collector.read), ({**c, "state": "unreadable"}, f.collector.unreadable)],
        ),
    ]
