"""The captured stats pages of a real local mesh (samples/traffic_stats.json), for the tests of golden metrics.

Pods of namespace shop: api (2 pods of whoami failing every 5th request and answering
after 40 ms), called through its service by caller (meshed) and outsider (no sidecar);
caller also opened one opaque TCP connection to ledger.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from isthmus.model.codec import decode
from isthmus.model.index import ClusterState
from isthmus.viz.admin import PodRef
from isthmus.viz.history import Cycle, History, Reading, Window
from isthmus.viz.traffic import FlowKey, Traffic, flows_from_stats

SAMPLE = Path(__file__).parent / "samples" / "traffic_stats.json"
API_1, API_2, CALLER, LEDGER = "api-3b6c7-093on", "api-3b6c7-dtouy", "caller-35f64-9dtzs", "ledger-50fb0-1oqm8"
API_IN = FlowKey("inbound", 8080)
API_UNMESHED = FlowKey("inbound", 8080, unmeshed=True)
TO_API = FlowKey("outbound", 80, "shop", "api")
TO_LEDGER = FlowKey("outbound", 7070, "shop", "ledger")
LEDGER_IN = FlowKey("inbound", 7070)


@cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


def state() -> ClusterState:
    return decode(ClusterState, _data()["state"])


def page(pod: str) -> str:
    """The page as the sidecar served it."""
    return json.dumps(_data()["pages"][f"shop/{pod}"])


def ref(pod: str) -> PodRef:
    return PodRef("local", "shop", pod)


def deployment(pod: str) -> str:
    return pod.rsplit("-", 2)[0]


def flows(pod: str) -> dict[FlowKey, Traffic]:
    return flows_from_stats(page(pod))


def readings(errors: dict[str, str] | None = None) -> dict[PodRef, Reading]:
    """Every meshed pod of the sample read (or failing with the reason in `errors`)."""
    errors = errors or {}
    out = {}
    for key in _data()["pages"]:
        pod = key.split("/")[1]
        error = errors.get(pod)
        out[ref(pod)] = Reading(deployment(pod), None if error else flows(pod), error)
    return out


def window(seconds: float = 60.0, errors: dict[str, str] | None = None) -> Window:
    """A window over which the sample's pods started and counted all they show (from zero)."""
    history = History()
    history.add(Cycle(0.0, {}))
    history.add(Cycle(seconds, readings(errors)))
    return history.window(seconds, now=seconds + 2)
