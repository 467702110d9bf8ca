"""`isthmus up --trust-domain/--workload-cert-lifetime`: parsing and merging with what a mesh stored."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from isthmus.cli.durations import DurationError, parse_duration
from isthmus.cli.errors import CliError
from isthmus.cli.up import mesh_settings
from isthmus.platform.local.settings import MeshSettings, SettingsError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("90s", timedelta(seconds=90), id="seconds"),
        pytest.param("10m", timedelta(minutes=10), id="minutes"),
        pytest.param("24h", timedelta(hours=24), id="hours"),
        pytest.param("7d", timedelta(days=7), id="days"),
        pytest.param("1h30m", timedelta(minutes=90), id="combined"),
        pytest.param(" 2H ", timedelta(hours=2), id="case-and-space"),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "--x") == expected


@pytest.mark.parametrize("text", ["", "10", "m", "10x", "1.5h", "-5m", "10m junk", "h10"])
def test_bad_durations_name_the_flag(text: str) -> None:
    with pytest.raises(DurationError, match=r"--workload-cert-lifetime .* is not a duration"):
        parse_duration(text, "--workload-cert-lifetime")


def _args(trust_domain: str | None = None, lifetime: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(trust_domain=trust_domain, workload_cert_lifetime=lifetime)


def test_no_flags_keep_what_is_stored() -> None:
    assert mesh_settings(_args(), MeshSettings(trust_domain="example.org")) is None


def test_a_flag_not_given_keeps_its_stored_value() -> None:
    stored = MeshSettings(trust_domain="example.org", workload_cert_lifetime=timedelta(hours=1))
    got = mesh_settings(_args(lifetime="10m"), stored)
    assert got == MeshSettings(trust_domain="example.org", workload_cert_lifetime=timedelta(minutes=10))


def test_a_new_mesh_takes_the_trust_domain() -> None:
    got = mesh_settings(_args(trust_domain="example.org"), None)
    assert got is not None and got.trust_domain == "example.org"
    assert got.workload_cert_lifetime == timedelta(hours=24)


def test_a_stored_mesh_keeps_its_trust_domain() -> None:
    with pytest.raises(CliError, match=r"this mesh's trust domain is 'a\.org'.*down --purge"):
        mesh_settings(_args(trust_domain="b.org"), MeshSettings(trust_domain="a.org"))


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        pytest.param(_args(lifetime="59s"), "out of range: choose from 1m to 30d", id="too-short"),
        pytest.param(_args(lifetime="31d"), "out of range", id="too-long"),
        pytest.param(_args(trust_domain="Not A Domain"), "trust domain 'Not A Domain'", id="bad-domain"),
    ],
)
def test_bad_settings_are_one_clear_line(args: argparse.Namespace, problem: str) -> None:
    with pytest.raises(CliError, match=problem):
        mesh_settings(args, None)


def test_settings_round_trip_through_json() -> None:
    s = MeshSettings(trust_domain="example.org", workload_cert_lifetime=timedelta(minutes=5))
    assert MeshSettings.from_json(s.to_json()) == s


def test_settings_refuse_what_they_cannot_hold() -> None:
    with pytest.raises(SettingsError):
        MeshSettings(workload_cert_lifetime=timedelta(seconds=5))
