"""The pure parts of a link: its Secret, the remote API's messages, probe verdicts and latencies, `check`."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest

from isthmus.model.manifests import parse_objects
from isthmus.model.resources import Secret
from isthmus.multicluster.checks import ClusterLinks, evaluate
from isthmus.multicluster.errors import BadLinkSecret, CredentialRefused, RemoteUnavailable
from isthmus.multicluster.link_secret import from_secret, link_objects, link_secret
from isthmus.multicluster.probes import ProbeRecord
from isthmus.multicluster.remote_wire import Exported, Ping, Snapshot, Unexported, decode
from tests.multicluster.fakes import CONFIG, ID


def test_the_printed_link_applies_and_reads_back_as_the_same_link() -> None:
    namespace, secret = parse_objects(link_objects(CONFIG), "link")
    assert namespace.kind == "Namespace" and isinstance(secret, Secret)
    assert secret.meta.name == "link-east" and secret.meta.namespace == "isthmus-multicluster"
    assert from_secret(secret) == CONFIG
    assert CONFIG.credential not in repr(CONFIG)


def _with(key: str, value: str | None) -> Secret:
    secret = link_secret(CONFIG)
    data = {k: v for k, v in secret.data if k != key}
    if value is not None:
        data[key] = base64.b64encode(value.encode()).decode()
    return replace(secret, data=tuple(sorted(data.items())))


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        pytest.param(_with("credential", None), "lacks credential", id="no-credential"),
        pytest.param(_with("api-address", "east:6443"), "api-address is not an IP address", id="bad-address"),
        pytest.param(_with("gateway-port", "99999"), "gateway-port is not a port number", id="bad-port"),
        pytest.param(_with("cluster-name", "north"), "must be named link-north", id="misnamed"),
        pytest.param(replace(link_secret(CONFIG), type="Opaque"), "not mirror.isthmus.io/link", id="wrong-type"),
    ],
)
def test_a_bad_link_secret_says_what_is_wrong_and_never_shows_a_value(secret: Secret, message: str) -> None:
    with pytest.raises(BadLinkSecret, match=message) as info:
        from_secret(secret)
    assert CONFIG.credential not in str(info.value)


EXPORT = {
    "namespace": "shop",
    "name": "api",
    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "db", "port": 5432, "protocol": "TCP"}],
    "identities": [ID],
    "opaque_ports": [5432],
}
GATEWAY = {
    "address": "172.31.255.129",
    "port": 4143,
    "probe_port": 4191,
    "identity": "spiffe://x/ns/a/sa/b",
    "installed": True,
}


def test_the_remote_messages_become_updates() -> None:
    snapshot = decode("east", {"ok": True, "type": "snapshot", "gateway": GATEWAY, "exports": [EXPORT]})
    assert isinstance(snapshot, Snapshot)
    (export,) = snapshot.exports
    assert (export.service.meta.namespace, export.service.meta.name) == ("shop", "api")
    assert [p.port for p in export.service.ports] == [80, 5432] and export.opaque_ports == {5432}
    assert snapshot.gateway.gateway.ip == "172.31.255.129" and snapshot.gateway.probe_port == 4191
    assert isinstance(decode("east", {"ok": True, "type": "exported", "export": EXPORT}), Exported)
    assert decode("east", {"ok": True, "type": "unexported", "namespace": "shop", "name": "api"}) == Unexported(
        "shop", "api"
    )
    assert decode("east", {"ok": True, "type": "ping"}) == Ping()


@pytest.mark.parametrize(
    ("msg", "error", "message"),
    [
        pytest.param(
            {"ok": False, "code": "unauthorized", "error": "revoked"}, CredentialRefused, "revoked", id="refused"
        ),
        pytest.param({"ok": False, "error": "busy"}, RemoteUnavailable, "busy", id="error"),
        pytest.param({"ok": True, "type": "surprise"}, RemoteUnavailable, "malformed", id="unknown-type"),
        pytest.param(
            {"ok": True, "type": "exported", "export": {**EXPORT, "ports": [{"port": "80"}]}},
            RemoteUnavailable,
            "malformed",
            id="port-as-string",
        ),
        pytest.param(
            {"ok": True, "type": "gateway", "gateway": {**GATEWAY, "address": "gw.east"}},
            RemoteUnavailable,
            "malformed",
            id="gateway-not-an-ip",
        ),
        pytest.param([1, 2], RemoteUnavailable, "JSON object", id="not-an-object"),
    ],
)
def test_bad_remote_messages_are_typed_errors(msg: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        decode("east", msg)


def test_probe_verdicts_need_two_failures_but_one_success() -> None:
    record = ProbeRecord(failures_until_dead=2)
    assert record.success(now=1.0, latency=0.002) and record.alive is True
    assert not record.failure("timeout") and record.alive is True  # one lost probe: no flap
    assert record.failure("timeout") and record.alive is False
    assert record.success(now=4.0, latency=0.003) and record.alive is True
    first = ProbeRecord(failures_until_dead=2)
    assert first.failure("refused") and first.alive is False  # nothing known yet: the first probe decides


def test_probe_latency_percentiles_are_nearest_rank_over_the_last_answers() -> None:
    record = ProbeRecord()
    for ms in range(1, 101):
        record.success(now=float(ms), latency=ms / 1000)
    summary = record.summary(now=100.5)
    assert summary["latency_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert summary["since_success_s"] == 0.5
    for _ in range(50):
        record.success(now=101.0, latency=0.5)
    # Only the last 100 count: 0.051..0.100, then fifty of 0.5.
    assert (record.percentile(1), record.percentile(50), record.percentile(51)) == (0.051, 0.1, 0.5)


def _status(**overrides: Any) -> dict[str, Any]:
    link = {
        "cluster": "east",
        "connected": True,
        "credential_error": "",
        "remote_error": "",
        "write_error": "",
        "synced": True,
        "gateway": {"address": "172.31.255.129", "port": 4143},
        "probe": {"alive": True, "last_error": ""},
        "exports": ["shop/api"],
        "mirrors": ["shop/api-east"],
        "refused": [],
        "out_of_sync": [],
    }
    return {"links": [{**link, **overrides}], "broken": []}


def _failed(results: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in results if not r["ok"]]


def test_check_passes_a_healthy_link_and_names_each_problem(anchor_pem: str, other_anchor_pem: str) -> None:
    config = replace(CONFIG, ca_bundle=anchor_pem)
    healthy = ClusterLinks("west", {"link-east": config}, _status(), anchors_pem=anchor_pem)
    assert _failed(evaluate([healthy])) == []
    sick = ClusterLinks(
        "west",
        {"link-east": replace(CONFIG, ca_bundle=other_anchor_pem)},
        _status(
            probe={"alive": False, "last_error": "no answer"},
            refused=[{"service": "shop/api", "reason": "a user's service"}],
            credential_error="revoked",
            connected=False,
        ),
        anchors_pem=anchor_pem,
    )
    results = evaluate([sick])
    failed = _failed(results)
    assert any("accepts the link credential" in f for f in failed)
    assert any("answers its probes" in f for f in failed)
    assert any("mirrors match" in f for f in failed)
    assert any("shares this mesh's trust anchor" in f for f in failed)
    hints = "\n".join(r["hint"] for r in results if not r["ok"])
    assert "revoked" in hints and "a user's service" in hints and "link again" in hints


def test_check_with_no_links_passes_and_a_broken_secret_fails() -> None:
    assert _failed(evaluate([ClusterLinks("west", {}, {"links": [], "broken": []})])) == []
    broken = ClusterLinks("west", {"link-north": "secret link-north lacks credential"}, {"links": [], "broken": []})
    assert _failed(evaluate([broken])) == ["[west] link secret link-north is usable"]
