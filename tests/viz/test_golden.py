"""Golden metrics per deployment, pod and service, from the captured pages of a real mesh."""

from __future__ import annotations

import pytest

from isthmus.viz.golden import Figures, Unscraped, deployment_rows, pod_rows, service_rows, unscraped
from isthmus.viz.history import History
from isthmus.viz.latency import Histogram
from isthmus.viz.traffic import Traffic
from tests.viz.traffic_sample import API_1, API_2, CALLER, LEDGER, state, window

DEPLOYMENTS = [("shop", "api"), ("shop", "caller"), ("shop", "ledger"), ("shop", "outsider")]


def by_name(rows: list[object]) -> dict[str, object]:
    return {r.name: r for r in rows}


def test_deployments_are_measured_as_servers_from_every_client() -> None:
    rows = {r.name: r for r in deployment_rows(state(), window(60), DEPLOYMENTS)}
    api = rows["api"]
    assert (api.meshed, api.pods, api.unscraped) == (2, 2, ())
    assert api.figures is not None
    t = api.figures.traffic
    # Both pods, from the meshed caller (307 + 323) and from outsider, which has no sidecar (3).
    assert (t.responses, t.failures, t.open, t.latency.count) == (633, 126, 2, 633)
    assert api.figures.rps == pytest.approx(633 / 60)
    assert api.figures.success == pytest.approx(507 / 633)
    # whoami answered after 40 ms; most requests took 41 ms on the server side, a few longer.
    p50, p99 = api.figures.latency_ms(0.5), api.figures.latency_ms(0.99)
    assert p50 == pytest.approx(41.5, abs=0.1)
    assert p99 is not None and 45 < p99 < 60


def test_a_deployment_that_only_calls_others_serves_nothing() -> None:
    caller = {r.name: r for r in deployment_rows(state(), window(60), DEPLOYMENTS)}["caller"]
    assert caller.figures is not None and caller.figures.traffic == Traffic()
    assert caller.figures.success is None and caller.figures.rps == 0


def test_opaque_tcp_counts_connections_and_bytes() -> None:
    ledger = {r.name: r for r in deployment_rows(state(), window(60), DEPLOYMENTS)}["ledger"]
    assert ledger.figures is not None
    assert ledger.figures.traffic == Traffic(opened=1, received=6, sent=6)
    assert ledger.figures.success is None


def test_a_deployment_without_sidecars_has_no_figures() -> None:
    outsider = {r.name: r for r in deployment_rows(state(), window(60), DEPLOYMENTS)}["outsider"]
    assert (outsider.meshed, outsider.pods, outsider.figures) == (0, 1, None)


def test_a_deployment_without_pods_is_listed_empty() -> None:
    (row,) = deployment_rows(state(), window(60), [("shop", "scaled-to-zero")])
    assert (row.meshed, row.pods, row.figures) == (0, 0, None)


def test_pods_are_measured_one_by_one() -> None:
    rows = {r.name: r for r in pod_rows(state(), window(60), state().pods)}
    assert set(rows) == {API_1, API_2, CALLER, LEDGER, next(p.name for p in state().pods if p.deployment == "outsider")}
    one = rows[API_1].figures
    assert one is not None and (one.traffic.responses, one.traffic.failures) == (307, 61)
    two = rows[API_2].figures
    assert two is not None and (two.traffic.responses, two.traffic.failures) == (326, 65)


def test_services_are_measured_as_their_meshed_clients_saw_them() -> None:
    rows = {r.name: r for r in service_rows(state(), window(60), [("shop", "api"), ("shop", "ledger")])}
    api = rows["api"]
    assert (api.meshed, api.pods) == (2, 2)
    assert api.figures is not None
    # What caller's sidecar counted on the way out: outsider's 3 requests are nobody's to count here.
    t = api.figures.traffic
    assert (t.responses, t.failures, t.latency.count) == (630, 126, 630)
    assert api.figures.success == pytest.approx(0.8)
    ledger = rows["ledger"].figures
    assert ledger is not None and ledger.traffic == Traffic(opened=1, received=6, sent=6)


def test_an_unreadable_sidecar_is_named_and_its_deployment_shows_the_rest() -> None:
    w = window(60, errors={API_1: "connection refused (its Envoy is not running)"})
    api = {r.name: r for r in deployment_rows(state(), w, DEPLOYMENTS)}["api"]
    assert api.unscraped == (Unscraped(API_1, "shop", "connection refused (its Envoy is not running)"),)
    assert api.figures is not None and api.figures.traffic.responses == 326
    (pod,) = [r for r in pod_rows(state(), w, state().pods) if r.name == API_1]
    assert pod.figures is None and pod.unscraped == api.unscraped
    assert unscraped(w) == api.unscraped


def test_no_window_yet_means_no_figures() -> None:
    h = History()
    rows = deployment_rows(state(), h.window(60, now=1.0), DEPLOYMENTS)
    assert [r.figures for r in rows] == [None] * 4
    assert [(r.meshed, r.pods) for r in rows] == [(2, 2), (1, 1), (1, 1), (0, 1)]


@pytest.mark.parametrize(
    ("traffic", "seconds", "rps", "success"),
    [
        pytest.param(Traffic(responses=100, failures=25), 50.0, 2.0, 0.75, id="some-fail"),
        pytest.param(Traffic(responses=0), 10.0, 0.0, None, id="no-requests"),
        pytest.param(Traffic(responses=10, failures=10), 10.0, 1.0, 0.0, id="all-fail"),
        pytest.param(Traffic(responses=10), 0.0, 0.0, 1.0, id="no-span"),
    ],
)
def test_figures(traffic: Traffic, seconds: float, rps: float, success: float | None) -> None:
    f = Figures(seconds, traffic)
    assert f.rps == rps and f.success == success


def test_figures_bytes_per_second() -> None:
    f = Figures(4.0, Traffic(received=400, latency=Histogram()))
    assert f.bytes_per_second(f.traffic.received) == 100.0
