"""`isthmus stat` without a mesh: its options, and its output for captured pages against golden files.

(The command's module is isthmus/cli/stat.py; its tests live with viz's, whose data they render.)
"""

from __future__ import annotations

import argparse
import json

import pytest

from isthmus.cli.errors import CliError
from isthmus.cli.main import build_parser
from isthmus.cli.stat import Fetched, StatOptions, build, empty_note, format_ms, notes, render_json, render_table
from isthmus.viz.history import History, Window
from tests.cli.helpers import one_error_line, run
from tests.viz.test_edges_cli import check_golden
from tests.viz.test_golden import DEPLOYMENTS
from tests.viz.traffic_sample import API_1, state, window


def options(*argv: str) -> StatOptions:
    args = build_parser().parse_args(["stat", *argv])
    assert isinstance(args, argparse.Namespace)
    return StatOptions.from_args(args)


def fetched(w: Window | None = None) -> Fetched:
    return Fetched(state(), tuple(DEPLOYMENTS), window(60) if w is None else w)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["deploy"], StatOptions("deploy", None, None, "default", 60.0, "table"), id="defaults"),
        pytest.param(
            ["po", "web-1", "-n", "shop", "-c", "west", "--window", "10s"],
            StatOptions("pod", "web-1", "west", "shop", 10.0, "table"),
            id="short-names",
        ),
        pytest.param(
            ["services", "-A", "-w", "10m", "-o", "json"],
            StatOptions("svc", None, None, None, 600.0, "json"),
            id="services-everywhere",
        ),
        pytest.param(
            ["Deployments", "-w", "1m30s"], StatOptions("deploy", None, None, "default", 90.0, "table"), id="any-window"
        ),
    ],
)
def test_options(argv: list[str], expected: StatOptions) -> None:
    assert options(*argv) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["edges"], 'isthmus: stat for "edges"? use deploy, pod or svc', id="unknown-kind"),
        pytest.param(
            ["deploy", "--window", "5s"], "isthmus: --window 5s is out of range: use 10s to 10m", id="too-short"
        ),
        pytest.param(
            ["deploy", "--window", "11m"], "isthmus: --window 11m is out of range: use 10s to 10m", id="too-long"
        ),
        pytest.param(["deploy", "--window", "soon"], "isthmus: --window 'soon' is not a duration", id="not-a-duration"),
        pytest.param(
            ["deploy", "-n", "shop", "-A"],
            "isthmus: use either -n NAMESPACE or -A (all namespaces), not both",
            id="both",
        ),
    ],
)
def test_bad_options_get_one_line_and_exit_1(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, "stat", *argv)
    assert (code, out) == (1, "")
    assert one_error_line(err).startswith(message)


def test_help_explains_the_columns(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["stat", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for words in ("SUCCESS", "RPS", "LATENCY_P50", "TCP_CONN", "MESHED", "deploy|pod|svc", "--window", "as servers"):
        assert words in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["deploy", "nope", "-n", "shop"],
            'deployment "nope" not found in namespace "shop" of cluster local',
            id="deployment",
        ),
        pytest.param(["svc", "nope", "-A"], 'service "nope" not found in any namespace of cluster local', id="service"),
        pytest.param(["pod", "api", "-n", "default"], 'pod "api" not found in namespace "default"', id="pod"),
    ],
)
def test_unknown_names_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message):
        build(fetched(), options(*argv))


def test_deployments_of_a_real_scrape() -> None:
    opts = options("deploy", "-n", "shop")
    report = build(fetched(), opts)
    assert report.unscraped == () and notes(report, opts) == []
    check_golden("stat_deploy.txt", render_table(report, opts))


def test_pods_everywhere() -> None:
    opts = options("pods", "-A")
    check_golden("stat_pods_all.txt", render_table(build(fetched(), opts), opts))


def test_services_as_json() -> None:
    opts = options("svc", "-n", "shop", "-o", "json")
    text = render_json(build(fetched(), opts), opts)
    check_golden("stat_svc.json", text)
    data = json.loads(text)
    assert (data["kind"], data["view"], data["window"]["covered"]) == ("svc", "client", 60.0)
    api = next(r for r in data["rows"] if r["name"] == "api")
    assert (api["requests"], api["failures"], api["success_rate"]) == (630, 126, 0.8)
    assert api["rps"] == 10.5 and api["meshed"] == {"ready": 2, "pods": 2}


def test_one_deployment_by_name() -> None:
    opts = options("deploy", "api", "-n", "shop")
    assert [r.name for r in build(fetched(), opts).rows] == ["api"]


def test_an_unreadable_sidecar_shows_as_such_and_the_rest_still_shows() -> None:
    w = window(60, errors={API_1: "connection refused (its Envoy is not running)"})
    opts = options("pod", "-n", "shop")
    report = build(fetched(w), opts)
    check_golden("stat_pods_unscraped.txt", render_table(report, opts))
    assert notes(report, opts) == [
        f"warning: cannot read the sidecar of pod shop/{API_1} (connection refused (its Envoy is not running));"
        " its figures are missing"
    ]
    data = json.loads(render_json(report, opts))
    assert data["unscraped"] == [
        {"namespace": "shop", "pod": API_1, "reason": "connection refused (its Envoy is not running)"}
    ]
    row = next(r for r in data["rows"] if r["name"] == API_1)
    assert row["requests"] is None and row["unscraped"] == [
        {"pod": API_1, "reason": "connection refused (its Envoy is not running)"}
    ]


def test_notes_about_short_windows() -> None:
    opts = options("deploy", "-n", "shop")
    empty = build(fetched(History().window(60, now=0.0)), opts)
    assert notes(empty, opts) == [
        "note: the control plane has not read the sidecars twice yet, so there is no window to show;"
        " try again in a few seconds"
    ]


def test_a_note_when_the_collector_is_younger_than_the_window() -> None:
    w = window(25)
    long_ago = Window(600.0, w.seconds, w.age, w.pods)
    opts = options("deploy", "-n", "shop", "-w", "10m")
    assert notes(build(fetched(long_ago), opts), opts) == [
        "note: figures cover the last 25s only: the control plane began reading the sidecars then"
    ]


def test_nothing_to_list() -> None:
    opts = options("svc", "-n", "empty")
    report = build(fetched(), opts)
    assert report.rows == () and empty_note(opts) == 'No services in namespace "empty".'


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        pytest.param(None, "-", id="none"),
        pytest.param(0.0, "<1ms", id="under-a-millisecond"),
        pytest.param(41.5, "42ms", id="ms"),
        pytest.param(999.4, "999ms", id="just-under-a-second"),
        pytest.param(1234.0, "1.23s", id="seconds"),
    ],
)
def test_format_ms(ms: float | None, text: str) -> None:
    assert format_ms(ms) == text
