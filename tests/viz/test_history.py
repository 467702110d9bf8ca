"""The collector's history: which cycles it keeps, and each pod's traffic over a window."""

from __future__ import annotations

import json

import pytest

from isthmus.viz.admin import PodRef
from isthmus.viz.history import Cycle, History, PodWindow, Reading, Retention, Window, prune
from isthmus.viz.traffic import FlowKey, Traffic

IN = FlowKey("inbound", 8080)
A, B = PodRef("west", "shop", "api-1"), PodRef("west", "shop", "api-2")


def served(n: int, open_now: int = 0) -> Reading:
    return Reading("api", {IN: Traffic(responses=n, opened=n, open=open_now)})


def broken(reason: str = "connection refused") -> Reading:
    return Reading("api", None, reason)


def history(*cycles: tuple[float, dict[PodRef, Reading]], retention: Retention | None = None) -> History:
    h = History(retention)
    for at, readings in cycles:
        h.add(Cycle(at, readings))
    return h


def responses(w: Window, pod: PodRef) -> int | None:
    found = [p for p in w.pods if p.pod == pod]
    return found[0].flows[IN].responses if found and IN in found[0].flows else None


def test_prune_keeps_recent_cycles_then_one_per_slot_back_to_the_longest_window() -> None:
    retention = Retention(recent=10, spacing=5, longest=30)
    kept = [c.at for c in prune([Cycle(float(t), {}) for t in range(0, 61)], retention)]
    # Every cycle of the last 10 s; before that the newest of each 5 s slot; and the one that
    # starts the 30 s window (t=30), nothing older.
    assert kept == [30.0, 34.0, 39.0, 44.0, 49.0, *(float(t) for t in range(50, 61))]


def test_pruning_as_cycles_arrive_keeps_the_same_ones_as_pruning_at_once() -> None:
    retention = Retention(recent=10, spacing=5, longest=30)
    h = history(*((float(t), {}) for t in range(0, 61)), retention=retention)
    assert len(h) == len(prune([Cycle(float(t), {}) for t in range(0, 61)], retention))


def test_memory_stays_bounded_at_the_default_settings() -> None:
    h = history(*((5.0 * i, {}) for i in range(1000)))
    assert len(h) <= 40


def test_cycles_must_come_in_time_order() -> None:
    h = history((10.0, {}))
    with pytest.raises(ValueError, match="time order"):
        h.add(Cycle(10.0, {}))


@pytest.mark.parametrize(
    ("seconds", "covered", "served_in_window"),
    [
        pytest.param(10, 10.0, 100 - 80, id="exact"),
        pytest.param(12, 15.0, 100 - 70, id="back-to-the-cycle-before"),
        pytest.param(60, 20.0, 100 - 60, id="longer-than-history"),
    ],
)
def test_a_window_runs_from_the_newest_cycle_old_enough(seconds: float, covered: float, served_in_window: int) -> None:
    h = history((100.0, {A: served(60)}), (105.0, {A: served(70)}), (110.0, {A: served(80)}), (120.0, {A: served(100)}))
    w = h.window(seconds, now=123.0)
    assert (w.asked, w.seconds, w.age) == (seconds, covered, 3.0)
    assert responses(w, A) == served_in_window


def test_a_single_cycle_is_no_window_yet() -> None:
    w = history((100.0, {A: served(60)})).window(60, now=101.0)
    assert w.seconds == 0.0 and responses(w, A) == 0


def test_no_cycles_no_pods() -> None:
    assert History().window(60, now=5.0) == Window(60, 0.0, 0.0, ())


def test_a_pod_that_started_inside_the_window_counts_from_zero() -> None:
    w = history((100.0, {A: served(50)}), (110.0, {A: served(60), B: served(7)})).window(10, now=110.0)
    assert responses(w, B) == 7


def test_a_pod_unreadable_at_the_start_counts_from_its_first_reading() -> None:
    h = history((100.0, {A: broken()}), (105.0, {A: served(30)}), (110.0, {A: served(45)}))
    assert responses(h.window(10, now=110.0), A) == 15


def test_a_pod_unreadable_now_shows_why_and_no_figures() -> None:
    w = history((100.0, {A: served(30)}), (110.0, {A: broken("no complete answer within 5s")})).window(10, now=110.0)
    assert w.pods == (PodWindow(A, "api", {}, error="no complete answer within 5s"),)


def test_a_pod_that_went_away_counts_for_what_it_did_while_there() -> None:
    w = history((100.0, {A: served(10), B: served(10)}), (105.0, {A: served(20)}), (110.0, {B: served(90)})).window(
        10, now=110.0
    )
    by_pod = {p.pod: p for p in w.pods}
    assert by_pod[A].current is False and by_pod[A].flows[IN].responses == 10
    assert by_pod[B].current is True and by_pod[B].flows[IN].responses == 80


def test_a_restarted_sidecar_counts_from_its_restart() -> None:
    w = history((100.0, {A: served(500)}), (110.0, {A: served(12)})).window(10, now=110.0)
    assert responses(w, A) == 12


def test_open_connections_are_as_last_read() -> None:
    w = history((100.0, {A: served(1, open_now=9)}), (110.0, {A: served(2, open_now=4)})).window(10, now=110.0)
    assert w.pods[0].flows[IN].open == 4


def test_wire_form_round_trips() -> None:
    h = history((100.0, {A: served(10), B: served(3)}), (110.0, {A: served(30), B: broken()}))
    w = h.window(10, now=111.0)
    assert Window.from_dict("west", json.loads(json.dumps(w.as_dict()))) == w
