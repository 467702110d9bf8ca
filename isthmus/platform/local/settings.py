"""Mesh-wide settings of a local mesh: chosen at `isthmus up`, stored with the mesh, read by the daemon.

The trust domain is fixed when the mesh's anchor and issuers are made (their
name constraints name it); the workload certificate lifetime may change on any
later `up` and applies to certificates issued from then on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from isthmus.identity.signing import DEFAULT_LIFETIME
from isthmus.identity.spiffe import DEFAULT_TRUST_DOMAIN, trust_domain_problem

MIN_CERT_LIFETIME = timedelta(minutes=1)
# Workload certificates are meant to be short-lived; an issuer lasts a year by default.
MAX_CERT_LIFETIME = timedelta(days=30)


class SettingsError(ValueError):
    """A mesh setting that cannot be used; the message names the setting and what to do."""


@dataclass(frozen=True)
class MeshSettings:
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    """The SPIFFE trust domain of every workload identity (spiffe://<trust domain>/ns/.../sa/...)."""
    workload_cert_lifetime: timedelta = DEFAULT_LIFETIME
    """How long a workload certificate lasts; sidecars renew at about 70% of it."""

    def __post_init__(self) -> None:
        if problem := trust_domain_problem(self.trust_domain):
            raise SettingsError(f"trust domain {self.trust_domain!r}: {problem}")
        if problem := cert_lifetime_problem(self.workload_cert_lifetime):
            raise SettingsError(problem)

    def to_json(self) -> str:
        return json.dumps(
            {
                "trust_domain": self.trust_domain,
                "workload_cert_lifetime_seconds": int(self.workload_cert_lifetime.total_seconds()),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> MeshSettings:
        raw = json.loads(text)
        return cls(
            trust_domain=str(raw["trust_domain"]),
            workload_cert_lifetime=timedelta(seconds=int(raw["workload_cert_lifetime_seconds"])),
        )


def cert_lifetime_problem(lifetime: timedelta) -> str | None:
    if lifetime < MIN_CERT_LIFETIME or lifetime > MAX_CERT_LIFETIME:
        return (
            f"workload certificate lifetime {_show(lifetime)} is out of range: choose from"
            f" {_show(MIN_CERT_LIFETIME)} to {_show(MAX_CERT_LIFETIME)} (default {_show(DEFAULT_LIFETIME)})"
        )
    return None


def trust_domain_change_problem(stored: str, wanted: str) -> str | None:
    """Why a mesh made for `stored` cannot switch to `wanted`, or None."""
    if stored == wanted:
        return None
    return (
        f"this mesh's trust domain is {stored!r}: its trust anchor and issuers are made for it, so it cannot"
        f" become {wanted!r}; to start afresh with {wanted!r}, run `isthmus down --purge` (deletes the mesh's"
        f" state) and `isthmus up --trust-domain {wanted}`"
    )


def _show(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
