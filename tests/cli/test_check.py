"""`isthmus check` decides from what it gathered; these feed it facts and read its verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from isthmus.cli import render
from isthmus.cli.check import Facts, evaluate


def _facts(types: list[dict[str, Any]], pods: int = 1) -> Facts:
    return Facts(
        daemon={"ok": True, "clusters": [{"name": "west"}]},
        pods={
            "west": [
                {"name": f"web-{i}", "namespace": "default", "sidecar": {"running": True}, "phase": "Running"}
                for i in range(pods)
            ]
        },
        controlplanes={
            "west": {
                "ok": True,
                "proxies": [
                    {"node_id": "west/default/web-0", "in_sync": all(t["in_sync"] for t in types), "types": types}
                ],
            }
        },
        envoy_version="9e55/1.40.0/Clean/RELEASE/BoringSSL",
    )


GOOD = {"short_type": "Listener", "in_sync": True, "nack": None}
NACKED = {
    "short_type": "Listener",
    "in_sync": False,
    "nack": {"version": "abc123", "message": "Error adding/updating listener(s) inbound: bad"},
}


def _by_name(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in results}


def test_all_good() -> None:
    results = evaluate(_facts([GOOD]))
    assert all(r["ok"] for r in results)
    assert render.check_results(results).endswith("Status check results are √")


def test_a_nack_fails_with_the_proxy_its_version_and_envoys_message() -> None:
    results = _by_name(evaluate(_facts([NACKED])))
    nack = results["[west] every sidecar accepted its configuration"]
    assert not nack["ok"]
    assert (
        "west/default/web-0: Listener version abc123 rejected: Error adding/updating listener(s) inbound: bad"
        in nack["hint"]
    )
    text = render.check_results(list(results.values()))
    assert "× [west] every sidecar accepted its configuration" in text
    assert "1 check(s) failed" in text


def test_a_pod_whose_sidecar_never_connected_is_named() -> None:
    results = _by_name(evaluate(_facts([GOOD], pods=2)))
    connected = results["[west] every sidecar is connected to the control plane (1/2)"]
    assert not connected["ok"] and "web-1" in connected["hint"]


@pytest.mark.parametrize(
    ("version", "ok"),
    [
        pytest.param("x/1.40.0/Clean/RELEASE/BoringSSL", True, id="supported"),
        pytest.param("x/1.29.1/Clean/RELEASE/BoringSSL", False, id="old"),
    ],
)
def test_envoy_version(version: str, ok: bool) -> None:
    f = _facts([GOOD])
    f.envoy_version = version
    [result] = [r for r in evaluate(f) if r["name"].startswith("Envoy version")]
    assert result["ok"] is ok


def test_no_daemon() -> None:
    results = evaluate(Facts(daemon_error="nothing is listening", envoy_version="x/1.40.0/Clean/RELEASE/BoringSSL"))
    assert results[-1] == {
        "name": "the local mesh daemon is running",
        "ok": False,
        "hint": "nothing is listening\nstart it with `isthmus up`",
        "warning": False,
    }
