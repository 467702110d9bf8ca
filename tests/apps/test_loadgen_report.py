"""The pure parts of loadgen: options, schedule, outcome classification, summary and rendering."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from isthmus.apps.loadgen.options import Options, Target, target
from isthmus.apps.loadgen.report import Tally, answered, failed, percentile, render_text, summarize
from isthmus.apps.loadgen.runner import Schedule

GOLDEN = Path(__file__).parent / "golden"
# UPDATE_GOLDEN=1 pytest tests/apps rewrites the golden files from the current output.
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text + "\n")
    assert text + "\n" == path.read_text()


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        pytest.param(50, 50, id="p50"),
        pytest.param(90, 90, id="p90"),
        pytest.param(99, 99, id="p99"),
        pytest.param(100, 100, id="max"),
        pytest.param(0, 1, id="p0-is-min"),
    ],
)
def test_percentile_is_nearest_rank(p: float, expected: float) -> None:
    assert percentile([float(v) for v in range(1, 101)], p) == expected


@pytest.mark.parametrize(
    ("status", "body", "failure", "pod"),
    [
        pytest.param(200, b'{"pod": "a", "path": "/"}', None, "a", id="whoami-ok"),
        pytest.param(503, b'{"pod": "a"}', "status_503", "a", id="whoami-503"),
        pytest.param(204, b"", None, None, id="no-body"),
        pytest.param(200, b"<html>", None, None, id="not-json"),
        pytest.param(200, b"{broken", None, None, id="broken-json"),
        pytest.param(200, b'{"pod": 5}', None, None, id="pod-not-a-string"),
        pytest.param(302, b"", "status_302", None, id="redirect-is-not-success"),
    ],
)
def test_answered(status: int, body: bytes, failure: str | None, pod: str | None) -> None:
    outcome = answered(status, body)
    assert (outcome.status, outcome.failure, outcome.pod) == (status, failure, pod)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://svc/a?b=1", Target("http://svc/a?b=1", "svc", 80, "/a?b=1"), id="path-query"),
        pytest.param("http://10.0.0.1:8080", Target("http://10.0.0.1:8080", "10.0.0.1", 8080, "/"), id="no-path"),
        pytest.param("http://[::1]:81/x", Target("http://[::1]:81/x", "::1", 81, "/x"), id="ipv6"),
    ],
)
def test_target(url: str, expected: Target) -> None:
    assert target(url) == expected


@pytest.mark.parametrize("url", ["https://svc/", "svc:80", "http:///path", "http://svc:70000/"])
def test_target_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        target(url)


def options(rate: float, duration_s: float, max_requests: int = 1000, urls: int = 2) -> Options:
    return Options(
        targets=tuple(target(f"http://h{n}/") for n in range(urls)),
        rate=rate,
        duration_s=duration_s,
        max_requests=max_requests,
        timeout_s=1.0,
        connections=4,
        json=False,
    )


def test_schedule_spaces_requests_and_alternates_urls() -> None:
    schedule = Schedule(options(rate=4, duration_s=1), threading.Event(), clock=lambda: 100.0)
    jobs = []
    while (job := schedule.take()) is not None:
        jobs.append((job[0], job[1].host))
    assert jobs == [(100.0, "h0"), (100.25, "h1"), (100.5, "h0"), (100.75, "h1")]


@pytest.mark.parametrize(
    ("rate", "duration_s", "max_requests", "planned"),
    [
        pytest.param(100, 2, 1000, 200, id="rate-times-duration"),
        pytest.param(3, 0.5, 1000, 2, id="rounds-up"),
        pytest.param(100, 60, 7, 7, id="capped"),
    ],
)
def test_planned(rate: float, duration_s: float, max_requests: int, planned: int) -> None:
    assert options(rate, duration_s, max_requests).planned == planned


def test_schedule_stops_when_told() -> None:
    stop = threading.Event()
    schedule = Schedule(options(rate=4, duration_s=1), stop, clock=lambda: 0.0)
    stop.set()
    assert schedule.take() is None


def sample_report() -> str:
    a, b = Tally(), Tally()
    for ms in range(1, 101):
        pod = "whoami-7d4f9-abcde" if ms % 2 else "whoami-7d4f9-xyz12"
        a.record("http://whoami.demo/", answered(200, json.dumps({"pod": pod}).encode()), ms / 1000)
    b.record("http://whoami.demo/?status=503", answered(503, b'{"pod": "whoami-7d4f9-abcde"}'), 0.5)
    b.record("http://whoami.demo/?status=503", failed("timeout"), 0.0)
    b.record("http://whoami.demo/?status=503", failed("connection_error"), 0.0)
    report = summarize(
        [a, b],
        urls=["http://whoami.demo/", "http://whoami.demo/?status=503"],
        target_rate=103,
        duration_s=1,
        elapsed_s=1.02,
        interrupted=False,
    )
    assert (report.total, report.successes, report.ok) == (103, 100, False)
    assert report.latency_ms == {"p50": 51.0, "p90": 91.0, "p99": 100.0, "max": 500.0}
    return render_text(report)


def test_render_text_golden() -> None:
    check_golden("loadgen_report.txt", sample_report())


def test_render_text_without_answers() -> None:
    tally = Tally()
    tally.record("http://x/", failed("connection_error"), 0.0)
    report = summarize([tally], urls=["http://x/"], target_rate=1, duration_s=1, elapsed_s=1, interrupted=True)
    text = render_text(report)
    assert "(no answers)" in text
    assert "(interrupted)" in text
    assert "pod " not in text
