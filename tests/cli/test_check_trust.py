"""`isthmus check` on the mesh's anchor and issuers: warn within 60 days, fail once expired, say what to do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from isthmus.cli import render
from isthmus.cli.check import CaFile, Facts, evaluate, gather
from isthmus.identity.anchors import CertificateAuthority, create_issuer, create_trust_anchor
from isthmus.identity.clock import ManualClock
from isthmus.platform.local.paths import StatePaths

START = datetime(2030, 1, 1, tzinfo=UTC)
ENVOY = "x/1.40.0/Clean/RELEASE/BoringSSL"


def _material(anchor_days: int = 3650, issuer_days: int = 365) -> tuple[CertificateAuthority, CertificateAuthority]:
    clock = ManualClock(START)
    anchor = create_trust_anchor(clock, lifetime=timedelta(days=anchor_days))
    return anchor, create_issuer(anchor, "west", clock, lifetime=timedelta(days=issuer_days))


def _facts(anchor: CertificateAuthority, issuer: CertificateAuthority, *, anchor_key: bool = True) -> Facts:
    # No daemon: the trust checks run whether a mesh is up or not.
    return Facts(
        daemon_error="nothing is listening",
        envoy_version=ENVOY,
        anchors=[CaFile(anchor.certificate, "/h/identity/trust-bundle.pem", "", "/h/a.key" if anchor_key else "")],
        issuers=[CaFile(issuer.certificate, "/h/west/issuer.crt", "west", "/h/west/issuer.key")],
    )


def _trust_lines(results: list[dict[str, Any]]) -> list[str]:
    text = render.check_results(results)
    return [line for line in text.splitlines() if "issuer" in line or "anchor" in line]


def _exit_code(results: list[dict[str, Any]]) -> int:
    # As `isthmus check` decides it.
    return 0 if all(r["ok"] or r.get("warning") for r in results) else 1


def test_valid_material_passes_quietly() -> None:
    results = evaluate(_facts(*_material()), ManualClock(START + timedelta(days=1)))
    assert _trust_lines(results) == [
        "√ trust anchor is valid for at least 60 days",
        "√ [west] issuer is valid for at least 60 days",
    ]


def test_an_issuer_expiring_within_60_days_warns_and_the_check_still_passes() -> None:
    anchor, issuer = _material(issuer_days=90)
    results = [
        r for r in evaluate(_facts(anchor, issuer), ManualClock(START + timedelta(days=60))) if "issuer" in r["name"]
    ]
    assert _trust_lines(results) == [
        "‼ [west] issuer is valid for at least 60 days",
        "    issuer of cluster west (/h/west/issuer.crt) expires on 2030-04-01 00:00Z, in 30 days: rotate it before then",
        "    replace it without downtime: isthmus identity rotate issuer --cluster west",
    ]
    assert _exit_code(results) == 0
    assert render.check_results(results).endswith("Status check results are √")


def test_an_expired_issuer_fails() -> None:
    anchor, issuer = _material(issuer_days=90)
    results = [
        r for r in evaluate(_facts(anchor, issuer), ManualClock(START + timedelta(days=91))) if "issuer" in r["name"]
    ]
    lines = _trust_lines(results)
    assert lines[0] == "× [west] issuer is within its validity period"
    assert "expired on 2030-04-01 00:00Z: rotate it now" in lines[1]
    assert _exit_code(results) == 1
    assert render.check_results(results).endswith("1 check(s) failed")


def test_without_the_anchor_key_the_hint_says_to_create_an_issuer_from_the_anchor() -> None:
    anchor, issuer = _material(issuer_days=30)
    [result] = [
        r for r in evaluate(_facts(anchor, issuer, anchor_key=False), ManualClock(START)) if "issuer" in r["name"]
    ]
    assert result["warning"]
    assert "isthmus identity issuer create --cluster west" in result["hint"]
    assert "isthmus identity rotate issuer --cluster west --issuer CERT --issuer-key KEY" in result["hint"]


@pytest.mark.parametrize(
    ("days_later", "line"),
    [
        pytest.param(0, "√ trust anchor is valid for at least 60 days", id="fresh"),
        pytest.param(40, "‼ trust anchor is valid for at least 60 days", id="expiring"),
        pytest.param(101, "× trust anchor is within its validity period", id="expired"),
    ],
)
def test_anchor_expiry(days_later: int, line: str) -> None:
    anchor, issuer = _material(anchor_days=100, issuer_days=10)
    results = evaluate(_facts(anchor, issuer), ManualClock(START + timedelta(days=days_later)))
    assert _trust_lines(results)[0] == line


def test_a_clock_behind_the_material_fails_with_a_clock_hint() -> None:
    results = evaluate(_facts(*_material()), ManualClock(START - timedelta(days=1)))
    anchor = next(r for r in results if r["name"].startswith("trust anchor"))
    assert anchor["name"] == "trust anchor is within its validity period" and not anchor["ok"]
    assert anchor["hint"].endswith("check this machine's clock")


def test_several_anchors_are_told_apart_by_name() -> None:
    (old, issuer), (new, _) = _material(), _material()
    facts = _facts(old, issuer)
    facts.anchors.append(CaFile(new.certificate, "/h/identity/trust-bundle.pem"))
    names = [r["name"] for r in evaluate(facts, ManualClock(START)) if r["name"].startswith("trust anchor")]
    assert len(names) == 2 and all("'Isthmus trust anchor " in n for n in names)


def test_unreadable_trust_material_fails_and_names_the_file(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    paths.anchor_cert.parent.mkdir(parents=True)
    paths.trust_bundle.parent.mkdir(parents=True)
    paths.trust_bundle.write_text("not a certificate\n")
    facts = gather(paths)
    assert facts.daemon is None  # nothing runs there
    [result] = [r for r in evaluate(facts, ManualClock(START)) if "readable" in r["name"]]
    assert not result["ok"] and str(paths.trust_bundle) in result["hint"] and "is not PEM" in result["hint"]


def test_gather_reads_the_bundle_and_every_clusters_issuer(tmp_path: Path) -> None:
    paths = StatePaths(tmp_path)
    anchor, west = _material()
    east = create_issuer(anchor, "east", ManualClock(START))
    paths.anchor_cert.parent.mkdir(parents=True)
    anchor.write(paths.anchor_cert, paths.anchor_key)
    paths.trust_bundle.parent.mkdir(parents=True)
    paths.trust_bundle.write_bytes(anchor.certificate_pem())
    for name, issuer in (("west", west), ("east", east)):
        paths.issuer_cert(name).parent.mkdir(parents=True)
        issuer.write(paths.issuer_cert(name), paths.issuer_key(name))
    facts = gather(paths)
    assert [a.certificate for a in facts.anchors] == [anchor.certificate]
    assert facts.anchors[0].key_path == str(paths.anchor_key)
    assert {i.cluster: i.certificate for i in facts.issuers} == {"west": west.certificate, "east": east.certificate}
    names = [r["name"] for r in evaluate(facts, ManualClock(START))]
    assert "[east] issuer is valid for at least 60 days" in names
    assert "[west] issuer is valid for at least 60 days" in names


def test_no_trust_material_means_no_trust_checks() -> None:
    results = evaluate(Facts(daemon_error="nothing is listening", envoy_version=ENVOY), ManualClock(START))
    assert not _trust_lines(results)
