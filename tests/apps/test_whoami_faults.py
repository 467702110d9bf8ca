"""whoami misbehaving on purpose: a known share of failures, evenly spread, and added latency."""

from __future__ import annotations

import http.client
import time

import pytest

from isthmus.apps.whoami import FaultPlan, Faults, Reply
from tests.apps.conftest import StartApp, run_app

OK = Reply(status=200, body=b"{}\n")


@pytest.mark.parametrize(
    ("faults", "statuses"),
    [
        pytest.param(Faults(), [200] * 8, id="none"),
        pytest.param(Faults(fail_share=0.25), [200, 200, 200, 500] * 2, id="every-4th"),
        pytest.param(Faults(fail_share=0.5, fail_status=503), [200, 503] * 4, id="every-other-with-503"),
        pytest.param(Faults(fail_share=1.0), [500] * 8, id="all"),
        pytest.param(
            Faults(fail_share=0.3), [200, 200, 200, 500, 200, 200, 500, 200], id="a-share-that-is-no-fraction-1-n"
        ),
    ],
)
def test_failures_are_an_exact_share_evenly_spread(faults: Faults, statuses: list[int]) -> None:
    plan = FaultPlan(faults)
    assert [plan.apply(OK).status for _ in statuses] == statuses


def test_a_tenth_fails_exactly_one_in_ten_over_many_requests() -> None:
    plan = FaultPlan(Faults(fail_share=0.1))
    assert sum(plan.apply(OK).status == 500 for _ in range(1000)) == 100


def test_latency_adds_to_the_requested_delay_and_the_body_stays() -> None:
    plan = FaultPlan(Faults(fail_share=1.0, latency_ms=40))
    out = plan.apply(Reply(status=200, body=b"x", delay_s=0.01))
    assert (out.status, out.body, out.delay_s) == (500, b"x", pytest.approx(0.05))


def test_a_running_server_fails_and_stalls_as_told(start: StartApp) -> None:
    app = start("whoami", "--fail-share", "0.5", "--latency-ms", "30")
    assert "fail_share=0.5 latency_ms=30" in app.start_line
    statuses, durations = [], []
    for _ in range(6):
        connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
        began = time.monotonic()
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
        finally:
            connection.close()
        durations.append(time.monotonic() - began)
    assert statuses == [200, 500] * 3
    assert min(durations) >= 0.03


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--fail-share", "1.5"], "argument --fail-share: must be from 0 to 1, got 1.5", id="share"),
        pytest.param(["--fail-status", "200"], "argument --fail-status: must be from 400 to 599, got 200", id="status"),
        pytest.param(["--latency-ms", "soon"], "argument --latency-ms: not a number from 0 to 30000", id="latency"),
    ],
)
def test_bad_flags_are_refused(args: list[str], message: str) -> None:
    result = run_app("whoami", *args)
    assert result.returncode == 2 and message in result.stderr
