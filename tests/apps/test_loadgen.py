"""loadgen end to end, against real whoami servers on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.apps.conftest import REPO, App, app_env, closed_port, run_app, start_app


@pytest.fixture(scope="module")
def pods() -> Iterator[tuple[App, App]]:
    a = start_app("whoami", env={"POD_NAME": "pod-a"})
    b = start_app("whoami", env={"POD_NAME": "pod-b"})
    yield a, b
    a.stop()
    b.stop()


def loadgen(*args: str) -> tuple[int, dict[str, Any]]:
    result = run_app("loadgen", *args, "--json")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_sends_the_planned_count_spread_over_urls(pods: tuple[App, App]) -> None:
    a, b = pods
    code, report = loadgen(f"{a.url}/", f"{b.url}/", "--rate", "200", "--duration", "1")

    assert code == 0
    assert (report["total"], report["successes"], report["failures"]) == (200, 200, {})
    assert report["pods"] == {"pod-a": 100, "pod-b": 100}
    assert 150 <= report["achieved_rate"] <= 205
    assert set(report["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert report["interrupted"] is False


def test_counts_failing_answers_by_status(pods: tuple[App, App]) -> None:
    a, b = pods
    failing = f"{b.url}/?status=503"
    code, report = loadgen(f"{a.url}/", failing, "--rate", "100", "--duration", "0.5")

    assert code == 1
    assert (report["total"], report["successes"], report["failures"]) == (50, 25, {"status_503": 25})
    assert report["urls"][failing] == {"successes": 0, "failures": 25}
    assert report["pods"] == {"pod-a": 25, "pod-b": 25}  # a 503 from whoami still came from a pod


def test_max_requests_ends_the_run_early(pods: tuple[App, App]) -> None:
    a, _ = pods
    started = time.monotonic()
    code, report = loadgen(f"{a.url}/", "--rate", "100", "--duration", "60", "--max-requests", "7")
    assert (code, report["total"], report["successes"]) == (0, 7, 7)
    assert time.monotonic() - started < 5


def test_slow_answers_are_timeouts(pods: tuple[App, App]) -> None:
    a, _ = pods
    code, report = loadgen(f"{a.url}/?delay_ms=1000", "--rate", "20", "--duration", "0.5", "--timeout", "0.2")
    assert (code, report["total"], report["failures"]) == (1, 10, {"timeout": 10})
    assert report["latency_ms"] is None


def test_refused_connections_are_connection_errors() -> None:
    code, report = loadgen(f"http://127.0.0.1:{closed_port()}/", "--rate", "20", "--duration", "0.5")
    assert (code, report["total"], report["failures"]) == (1, 10, {"connection_error": 10})


def test_requests_that_cannot_start_in_time_are_not_sent(pods: tuple[App, App]) -> None:
    a, _ = pods
    # One connection, each answer takes 300 ms, one request due every 50 ms: the backlog grows
    # until requests are more than --timeout late, and those are given up rather than sent.
    code, report = loadgen(
        f"{a.url}/?delay_ms=300", "--rate", "20", "--duration", "1", "--timeout", "0.5", "--connections", "1"
    )
    failures = report["failures"]
    assert code == 1
    assert set(failures) == {"not_sent"}
    assert report["total"] == 20
    assert report["successes"] >= 2
    assert report["successes"] + failures["not_sent"] == 20


def test_sigterm_stops_early_and_still_reports(pods: tuple[App, App]) -> None:
    a, _ = pods
    process = subprocess.Popen(
        [sys.executable, "-m", "isthmus.apps.loadgen", f"{a.url}/", "--rate", "50", "--duration", "60", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=app_env(),
    )
    try:
        assert process.stderr is not None
        process.stderr.readline()  # the start line: signal handlers are in place
        time.sleep(0.5)
        process.terminate()
        stdout, _ = process.communicate(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    report = json.loads(stdout)
    assert process.returncode == 0
    assert report["interrupted"] is True
    assert 0 < report["total"] < 100
    assert report["successes"] == report["total"]


def test_human_readable_table(pods: tuple[App, App]) -> None:
    a, _ = pods
    result = run_app("loadgen", f"{a.url}/", "--rate", "20", "--duration", "0.2")
    assert result.returncode == 0
    assert result.stdout.splitlines()[0].startswith("requests                   4  target 20/s")
    assert "pod-a" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["http://127.0.0.1:1/", "--rate", "10"], id="no-duration"),
        pytest.param(["http://127.0.0.1:1/", "--rate", "10", "--duration", "3601"], id="too-long"),
        pytest.param(["http://127.0.0.1:1/", "--rate", "0", "--duration", "1"], id="zero-rate"),
        pytest.param(["https://127.0.0.1:1/", "--rate", "10", "--duration", "1"], id="https"),
        pytest.param(["http://127.0.0.1:99999/", "--rate", "10", "--duration", "1"], id="bad-port"),
        pytest.param(
            ["http://127.0.0.1:1/", "--rate", "1", "--duration", "1", "--max-requests", "0"], id="no-requests"
        ),
    ],
)
def test_rejects_bad_options(args: list[str]) -> None:
    result = run_app("loadgen", *args)
    assert result.returncode == 2
    assert "error:" in result.stderr
