"""`isthmus identity show`: reading the chain out of a sidecar's secrets dump, judging it, rendering it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from isthmus.cli import render
from isthmus.cli.errors import CliError
from isthmus.cli.identity import judge, parse_secrets_dump
from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle
from isthmus.identity.clock import ManualClock
from isthmus.identity.csr import generate_key
from isthmus.identity.signing import SigningPolicy, issue_certificate
from isthmus.identity.spiffe import workload_id


def _sidecar_dump(chain_pem: str) -> str:
    secret_type = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    return json.dumps(
        {
            "configs": [
                {
                    "secret": {
                        "@type": secret_type,
                        "name": "workload",
                        "tls_certificate": {"certificate_chain": {"inline_string": chain_pem}},
                    }
                },
                {"secret": {"@type": secret_type, "name": "trust-bundle"}},
            ]
        }
    )


POD = {"name": "web-1", "namespace": "default", "cluster": "west"}


def test_show_reads_the_chain_and_names_the_issuers_cluster() -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    anchor = create_trust_anchor(clock)
    west, east = create_issuer(anchor, "west", clock), create_issuer(anchor, "east", clock)
    signed = issue_certificate(west, generate_key().public_key(), workload_id("default", "web"), clock, SigningPolicy())
    chain = parse_secrets_dump(_sidecar_dump(signed.chain_pem().decode()), "web-1")
    clock.advance(timedelta(hours=2, minutes=30))
    found = judge(
        POD, chain, {"east": east.certificate, "west": west.certificate}, TrustBundle.of([anchor.certificate]), clock
    ).as_dict(clock.now())
    assert found["spiffe_id"] == "spiffe://cluster.local/ns/default/sa/web"
    assert found["serial"] == f"{signed.serial:x}"
    assert found["issuer"]["cluster"] == "west" and found["chain_verified"]
    assert found["remaining_seconds"] == int(timedelta(hours=21, minutes=30).total_seconds())
    lines = render.pod_identity(found).splitlines()
    assert lines[0] == "Pod:          web-1 (namespace default, cluster west)"
    assert lines[1] == "Identity:     spiffe://cluster.local/ns/default/sa/web"
    assert lines[3] == "Issuer:       CN=Isthmus issuer west,O=cluster.local (the issuer of cluster west)"
    assert lines[4].startswith("Trust anchor: CN=Isthmus trust anchor ") and lines[4].endswith("(chain verified)")
    assert lines[5] == "Not before:   2029-12-31 23:59:00Z"
    assert lines[6] == "Expires:      2030-01-02 00:00:00Z (in 21h30m)"


def test_show_says_when_a_chain_is_not_this_meshs() -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    mine, theirs = create_trust_anchor(clock), create_trust_anchor(clock)
    issuer = create_issuer(theirs, "west", clock)
    signed = issue_certificate(issuer, generate_key().public_key(), workload_id("default", "web"), clock)
    found = judge(POD, [signed.leaf, signed.issuer], {}, TrustBundle.of([mine.certificate]), clock).as_dict(clock.now())
    assert found["issuer"]["cluster"] is None and not found["chain_verified"]
    assert "is not signed by any anchor" in found["chain_problem"]
    text = render.pod_identity(found)
    assert "(not an issuer of this mesh)" in text and "Trust anchor: <none>: " in text


@pytest.mark.parametrize(
    "dump",
    [
        pytest.param(json.dumps({"configs": [{"secret": {"name": "trust-bundle"}}]}), id="no-workload-secret"),
        pytest.param("<html>", id="not-json"),
    ],
)
def test_show_without_a_certificate_in_the_sidecar_is_a_clear_error(dump: str) -> None:
    with pytest.raises(CliError, match="pod web-1: "):
        parse_secrets_dump(dump, "web-1")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(45, "45s", id="seconds"),
        pytest.param(300, "5m", id="minutes"),
        pytest.param(86340, "23h59m", id="hours"),
        pytest.param(86400 * 364 + 3 * 3600, "364d 3h", id="days"),
        pytest.param(-7500, "-2h05m", id="negative"),
    ],
)
def test_duration(seconds: int, text: str) -> None:
    assert render.duration(seconds) == text
