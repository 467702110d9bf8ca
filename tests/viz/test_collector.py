"""The control plane's traffic collector against a fake fleet: sweeps, failures, and window queries."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from typing import Any

import pytest

from isthmus.viz.admin import AdminReply, PodRef, StaticAdminScraper
from isthmus.viz.collector import (
    Collector,
    CollectorSettings,
    Sidecar,
    StaticFleet,
)
from isthmus.viz.history import Window
from isthmus.viz.traffic import TRAFFIC_STATS
from tests.viz.traffic_sample import API_1, API_2, API_IN, CALLER, TO_API, page, ref


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def page_with(responses: int) -> str:
    return json.dumps({"stats": [{"name": "http.inbound|8080.downstream_rq_2xx", "value": responses}]})


def fleet(pages: dict[str, str], errors: dict[str, str] | None = None) -> StaticFleet:
    scraper = StaticAdminScraper(
        {ref(pod): {TRAFFIC_STATS: body} for pod, body in pages.items()},
        {ref(pod): reason for pod, reason in (errors or {}).items()},
    )
    pods = sorted({*pages, *(errors or {})})
    return StaticFleet([Sidecar(ref(p), p.rsplit("-", 2)[0]) for p in pods], scraper)


def test_a_sweep_reads_every_listed_sidecar_in_one_go() -> None:
    f = fleet({API_1: page(API_1), CALLER: page(CALLER)})
    collector = Collector(f, clock=Clock())
    cycle = collector.sweep()
    assert cycle is not None and cycle.at == 1000.0
    assert f.scraper.asked == [((ref(API_1), ref(CALLER)), (TRAFFIC_STATS,))]
    assert cycle.readings[ref(API_1)].deployment == "api"
    assert (cycle.readings[ref(API_1)].flows or {})[API_IN].responses == 307
    assert (cycle.readings[ref(CALLER)].flows or {})[TO_API].responses == 630


def test_unreadable_sidecars_and_strange_pages_become_reasons() -> None:
    f = fleet({API_1: "<html>not envoy</html>"}, errors={API_2: "connection refused (its Envoy is not running)"})
    cycle = Collector(f, clock=Clock()).sweep()
    assert cycle is not None
    assert cycle.readings[ref(API_2)].error == "connection refused (its Envoy is not running)"
    reason = cycle.readings[ref(API_1)].error
    assert cycle.readings[ref(API_1)].flows is None and reason and "answered something unexpected" in reason


def test_when_the_platform_cannot_list_sidecars_no_cycle_is_recorded() -> None:
    f = fleet({API_1: page(API_1)})
    f.listed = None
    collector = Collector(f, clock=Clock())
    collector.collect_once()
    assert len(collector.history) == 0 and collector.last_error == "the platform is not answering"


def test_no_sidecars_is_an_empty_cycle_not_a_scrape() -> None:
    f = StaticFleet([], StaticAdminScraper({}))
    cycle = Collector(f, clock=Clock()).sweep()
    assert cycle is not None and cycle.readings == {} and f.scraper.asked == []


def test_windows_come_from_the_sweeps() -> None:
    clock = Clock()
    pages = {API_1: page_with(100)}
    collector = Collector(fleet(pages), clock=clock)
    collector.collect_once()
    clock.now += 5
    collector.fleet = fleet({API_1: page_with(160)})
    collector.collect_once()
    clock.now += 1
    answer = collector.answer({"op": "traffic", "window": 10})
    assert answer["ok"] and answer["interval"] == 5.0 and answer["collector_error"] is None
    w = Window.from_dict("west", answer["window"])
    assert (w.asked, w.seconds, w.age) == (10.0, 5.0, 1.0)
    assert w.pods[0].flows[API_IN].responses == 60


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        pytest.param({"op": "traffic"}, "window must be a number of seconds", id="missing"),
        pytest.param({"window": "1m"}, "window must be a number of seconds", id="text"),
        pytest.param({"window": True}, "window must be a number of seconds", id="bool"),
        pytest.param({"window": math.nan}, "window must be a number of seconds", id="nan"),
        pytest.param({"window": 0}, "window must be more than 0 and at most 600 seconds", id="zero"),
        pytest.param({"window": 601}, "window must be more than 0 and at most 600 seconds", id="too-long"),
    ],
)
def test_bad_queries_get_a_reason(request_: dict[str, Any], error: str) -> None:
    assert Collector(fleet({}), clock=Clock()).answer(request_) == {"ok": False, "error": error}


class FlakyFleet(StaticFleet):
    """Fails its first sweep with a bug, then works."""

    def __init__(self) -> None:
        super().__init__([Sidecar(ref(API_1), "api")], StaticAdminScraper({ref(API_1): {TRAFFIC_STATS: page(API_1)}}))
        self.calls = 0

    def scrape(self, pods: Sequence[PodRef], paths: Sequence[str]) -> dict[PodRef, AdminReply]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a bug")
        return super().scrape(pods, paths)


def test_the_loop_keeps_sweeping_after_a_failed_sweep() -> None:
    f = FlakyFleet()
    collector = Collector(f, CollectorSettings(interval=0.01))

    async def run_a_while() -> None:
        task = asyncio.create_task(collector.run())
        for _ in range(500):  # bounded: 5 s at most
            if len(collector.history) >= 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_a_while())
    assert f.calls >= 3 and len(collector.history) >= 2


def test_the_loop_notes_when_the_platform_does_not_answer() -> None:
    f = fleet({API_1: page(API_1)})
    f.listed = None
    collector = Collector(f, CollectorSettings(interval=0.01))

    async def run_briefly() -> None:
        task = asyncio.create_task(collector.run())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_briefly())
    assert len(collector.history) == 0
    assert collector.answer({"window": 10})["collector_error"] == "the platform is not answering"
