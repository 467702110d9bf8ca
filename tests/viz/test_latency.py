"""Envoy's latency bins: adding, subtracting two readings, and percentiles read from them."""

from __future__ import annotations

import pytest

from isthmus.viz.latency import EMPTY, Histogram, parse_detailed


def h(*bins: tuple[float, float, int]) -> Histogram:
    return Histogram.of(bins)


@pytest.mark.parametrize(
    ("bins", "expected"),
    [
        pytest.param([], (), id="empty"),
        pytest.param([(12, 1, 3), (1, 0.1, 2)], ((1, 0.1, 2), (12, 1, 3)), id="sorted-by-lower-bound"),
        pytest.param([(12, 1, 3), (12, 1, 4)], ((12, 1, 7),), id="same-bin-added"),
        pytest.param([(12, 1, 0), (0, 0, 5)], ((0, 0, 5),), id="empty-bins-dropped"),
    ],
)
def test_of(bins: list[tuple[float, float, int]], expected: tuple[tuple[float, float, int], ...]) -> None:
    assert Histogram.of(bins).bins == expected


@pytest.mark.parametrize(
    ("later", "earlier", "expected"),
    [
        pytest.param(h((40, 1, 10), (41, 1, 5)), h((40, 1, 4)), h((40, 1, 6), (41, 1, 5)), id="new-counts"),
        pytest.param(h((40, 1, 10)), h((40, 1, 10)), EMPTY, id="nothing-new"),
        pytest.param(h((40, 1, 10)), EMPTY, h((40, 1, 10)), id="from-nothing"),
        pytest.param(h((40, 1, 3)), h((40, 1, 10)), None, id="a-bin-went-down"),
        pytest.param(h((41, 1, 30)), h((40, 1, 10)), None, id="a-bin-vanished"),
    ],
)
def test_minus(later: Histogram, earlier: Histogram, expected: Histogram | None) -> None:
    assert later.minus(earlier) == expected


def test_plus_adds_bin_by_bin() -> None:
    assert h((1, 0.1, 2)).plus(h((1, 0.1, 3), (5, 0.1, 1))) == h((1, 0.1, 5), (5, 0.1, 1))
    assert EMPTY.plus(h((5, 0.1, 1))) == h((5, 0.1, 1)) == h((5, 0.1, 1)).plus(EMPTY)


@pytest.mark.parametrize(
    ("hist", "q", "expected"),
    [
        pytest.param(EMPTY, 0.5, None, id="empty"),
        pytest.param(h((40, 1, 100)), 0.5, 40.5, id="one-bin-spread-evenly"),
        pytest.param(h((40, 1, 100)), 0.99, 40.99, id="one-bin-p99"),
        pytest.param(h((0, 0, 10)), 0.5, 0.0, id="under-a-millisecond"),
        # 90 fast, 10 slow: p50 among the fast ones, p95 half-way into the slow bin.
        pytest.param(h((2, 0.1, 90), (100, 10, 10)), 0.5, 2 + 0.1 * 50 / 90, id="p50-of-two-groups"),
        pytest.param(h((2, 0.1, 90), (100, 10, 10)), 0.95, 105.0, id="p95-of-two-groups"),
        pytest.param(h((2, 0.1, 90), (100, 10, 10)), 1.0, 110.0, id="max"),
        pytest.param(h((2, 0.1, 90), (100, 10, 10)), 0.9, 2.1, id="exactly-at-a-bin-edge"),
    ],
)
def test_quantile(hist: Histogram, q: float, expected: float | None) -> None:
    found = hist.quantile(q)
    assert found == (None if expected is None else pytest.approx(expected))


def test_wire_form_round_trips() -> None:
    hist = h((0, 0, 1), (1.5, 0.1, 2), (120, 10, 3))
    assert Histogram.from_list(hist.as_list()) == hist


def test_parse_detailed_reads_the_cumulative_totals_not_the_last_interval() -> None:
    entry = {
        "name": "http.inbound|8080.downstream_rq_time",
        "totals": [{"lower_bound": 40, "width": 1, "count": 24}, {"lower_bound": 41, "width": 1, "count": 246}],
        "intervals": [{"lower_bound": 41, "width": 1, "count": 2}],
    }
    assert parse_detailed(entry) == h((40, 1, 24), (41, 1, 246))
