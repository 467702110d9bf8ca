"""`isthmus edges` without a mesh: its options, and its output for a captured scrape against golden files.

(The command's module is isthmus/cli/edges.py; its tests live with viz's, whose data they render.)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from isthmus.cli.edges import EdgesOptions, Fetched, build, empty_note, render_json, render_table, warnings
from isthmus.cli.errors import CliError
from isthmus.cli.main import build_parser
from isthmus.model.codec import decode
from isthmus.model.index import ClusterState
from isthmus.viz.admin import AdminReply, PodRef
from tests.cli.helpers import one_error_line, run
from tests.viz.pages import ref, sidecar
from tests.viz.test_edges import CLIENT_ID, SHOP, SHOP_1, STATE, WEB_CLUSTER, WEB_HANDSHAKES
from tests.xds.fixtures import CLIENT, CLUSTER_NAME, WEB_1

GOLDEN = Path(__file__).parent / "golden"
SAMPLE = Path(__file__).parent / "samples" / "local_scrape.json"
# UPDATE_GOLDEN=1 pytest tests/viz rewrites the golden files from the current output.
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n")
    assert text + "\n" == path.read_text()


def options(*argv: str) -> EdgesOptions:
    args = build_parser().parse_args(["edges", *argv])
    assert isinstance(args, argparse.Namespace)
    return EdgesOptions.from_args(args)


def captured() -> Fetched:
    """A real scrape of a local mesh (see the sample's "about")."""
    data = json.loads(SAMPLE.read_text())
    state = decode(ClusterState, data["state"])
    replies = {}
    for key, pages in data["replies"].items():
        namespace, name = key.split("/")
        pod = PodRef(state.settings.name, namespace, name)
        replies[pod] = AdminReply(pod, pages)
    return Fetched(state, replies)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param([], EdgesOptions("deploy", None, "default", "table"), id="defaults"),
        pytest.param(["pods", "-A"], EdgesOptions("pod", None, None, "table"), id="pods-everywhere"),
        pytest.param(["po", "-n", "shop", "-c", "west"], EdgesOptions("pod", "west", "shop", "table"), id="short"),
        pytest.param(["deployment", "-o", "json"], EdgesOptions("deploy", None, "default", "json"), id="json"),
    ],
)
def test_options(argv: list[str], expected: EdgesOptions) -> None:
    assert options(*argv) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["svc"], 'isthmus: edges between "svc"? use deploy (the default) or pod', id="unknown-level"),
        pytest.param(
            ["-n", "shop", "-A"], "isthmus: use either -n NAMESPACE or -A (all namespaces), not both", id="both"
        ),
    ],
)
def test_bad_options_get_one_line_and_exit_1(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, "edges", *argv)
    assert (code, out) == (1, "")
    assert one_error_line(err) == message


def test_help_explains_the_columns(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["edges", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for words in (
        "CLIENT-ID",
        "SERVER-ID",
        "(unmeshed)",
        "deploy|pod",
        "--all-namespaces",
        "since that sidecar started",
    ):
        assert words in text


def test_deployments_of_a_real_scrape() -> None:
    opts = options()
    report = build(captured(), opts)
    assert report.unscraped == ()
    check_golden("edges_deploy.txt", render_table(report, opts))


def test_pods_of_a_real_scrape() -> None:
    opts = options("pod")
    check_golden("edges_pod.txt", render_table(build(captured(), opts), opts))


def test_json_of_a_real_scrape() -> None:
    opts = options("-o", "json")
    text = render_json(build(captured(), opts), opts, "local")
    check_golden("edges_deploy.json", text)
    data = json.loads(text)
    web = next(e for e in data["edges"] if e["destination"]["deployment"] == "web" and e["source"]["meshed"])
    assert (web["mtls"], web["requests"], web["server_id"]) == (True, 5, "spiffe://cluster.local/ns/default/sa/web")


def test_names_outside_the_namespace_asked_for_say_their_namespace() -> None:
    api = f"outbound|80|{SHOP.name}.{SHOP.namespace}.svc.cluster.local"
    handshakes = f"cluster.outbound|80|{SHOP.name}|{SHOP.namespace}.ssl.handshake"
    traffic = {
        (api, SHOP_1.ip): {"cx_total": 1, "rq_total": 7},
        (WEB_CLUSTER, WEB_1.ip): {"cx_total": 1, "rq_total": 2},
    }
    replies = {
        ref(CLIENT): sidecar(STATE, CLIENT, traffic, {handshakes: 1, WEB_HANDSHAKES: 1}, [CLIENT_ID]),
        PodRef(CLUSTER_NAME, "shop", "api-1"): AdminReply(ref(SHOP_1), error="no complete answer within 5s"),
    }
    fetched = Fetched(STATE, replies)
    shop, everywhere = options("-n", "shop"), options("-A")
    check_golden("edges_shop.txt", render_table(build(fetched, shop), shop))
    check_golden("edges_all.txt", render_table(build(fetched, everywhere), everywhere))
    assert warnings(build(fetched, shop)) == [
        "warning: cannot read the sidecar of pod shop/api-1 (no complete answer within 5s); edges it would show are missing"
    ]


def test_no_edges_says_why() -> None:
    assert empty_note(options()) == (
        'No edges with an end in namespace "default": no traffic between these workloads since their sidecars started.'
    )
    assert empty_note(options("-A")).startswith("No edges in any namespace:")


def test_options_errors_are_cli_errors() -> None:
    with pytest.raises(CliError):
        options("services")
