"""Issuer and trust-anchor rotation, decided without I/O.

An anchor rotation has two ends and one rule: every sidecar must trust the new
anchor before any certificate chains to it, and every certificate must chain to
it before any sidecar stops trusting the old one. So: the bundle becomes
old+new (`begin`), the issuers are re-made from the new anchor and the sidecars
re-certify, and only then the bundle becomes new-only (`finish`). This module
says where a mesh and each of its sidecars stand on that path; the CLI reads
the facts and acts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

OLD, NEW, CURRENT, OTHER = "old", "new", "current", "other"
"""Which anchor a certificate chains to: during a rotation old or new; otherwise current; or none of them."""


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def signed_by(cert: x509.Certificate, signer: x509.Certificate) -> bool:
    if cert.issuer != signer.subject:
        return False
    try:
        cert.verify_directly_issued_by(signer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


@dataclass(frozen=True)
class Anchors:
    """The mesh's anchor and, while an anchor rotation is in progress, the one replacing it."""

    current: x509.Certificate
    """The mesh's anchor; during a rotation, the old one."""
    next: x509.Certificate | None = None
    """The new anchor, from `rotate anchor begin` until `rotate anchor finish`."""

    @property
    def rotating(self) -> bool:
        return self.next is not None

    @property
    def signing(self) -> x509.Certificate:
        """The anchor new issuers are made from: the new one as soon as a rotation has begun."""
        return self.next or self.current

    def role(self, anchor: x509.Certificate) -> str:
        """OLD/NEW during a rotation, CURRENT otherwise, OTHER for an anchor that is neither."""
        if self.next is not None and fingerprint(anchor) == fingerprint(self.next):
            return NEW
        if fingerprint(anchor) == fingerprint(self.current):
            return OLD if self.rotating else CURRENT
        return OTHER

    def role_of_signer(self, cert: x509.Certificate) -> str:
        """Which of the anchors signed `cert` (an issuer), as a role."""
        for anchor in (self.current, self.next):
            if anchor is not None and signed_by(cert, anchor):
                return self.role(anchor)
        return OTHER

    @property
    def target(self) -> str:
        """The role every certificate should have once the current step is done."""
        return NEW if self.rotating else CURRENT


@dataclass(frozen=True)
class LiveSidecar:
    """What one sidecar's Envoy serves with right now, as read from its admin API."""

    cluster: str
    pod: str
    chain: tuple[x509.Certificate, ...] = ()
    """The workload certificate and its issuer; empty when Envoy has loaded none (nothing uses it yet)."""
    bundle: tuple[x509.Certificate, ...] = ()
    """The anchors Envoy verifies peers with; empty when it has loaded none."""
    error: str | None = None
    """Why the sidecar could not be read; the other fields are empty then."""

    @property
    def name(self) -> str:
        return f"{self.cluster}/{self.pod}"


@dataclass(frozen=True)
class SidecarState:
    """One sidecar judged against the mesh's issuers and anchors."""

    cluster: str
    pod: str
    serial: int | None
    """The workload certificate's serial; None when there is none to judge."""
    expires: datetime | None
    on_current_issuer: bool
    """Signed by the issuer its cluster signs with now."""
    anchor: str | None
    """The role of the anchor its certificate chains to; None when there is no certificate."""
    bundle: tuple[str, ...]
    """The roles of the anchors it trusts, in bundle order."""
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{self.cluster}/{self.pod}"

    @property
    def idle(self) -> bool:
        """Envoy holds no certificate yet: nothing uses one, and whatever it loads later is current."""
        return self.error is None and self.serial is None

    @property
    def bundle_text(self) -> str:
        return "+".join(self.bundle) or "-"


def judge_sidecar(live: LiveSidecar, issuer: x509.Certificate | None, anchors: Anchors) -> SidecarState:
    """Where one sidecar stands; `issuer` is its cluster's current issuer (None if the mesh holds none)."""
    if live.error is not None or not live.chain:
        return SidecarState(live.cluster, live.pod, None, None, False, None, (), live.error)
    leaf = live.chain[0]
    presented = live.chain[1] if len(live.chain) > 1 else None
    anchor = None
    if presented is not None and signed_by(leaf, presented):
        anchor = anchors.role_of_signer(presented)
    return SidecarState(
        cluster=live.cluster,
        pod=live.pod,
        serial=leaf.serial_number,
        expires=leaf.not_valid_after_utc,
        on_current_issuer=issuer is not None and signed_by(leaf, issuer),
        anchor=anchor or OTHER,
        bundle=tuple(anchors.role(a) for a in live.bundle),
    )


# ---------------------------------------------------------------- what each step waits for

Done = Callable[[SidecarState], bool]


def recertified(state: SidecarState) -> bool:
    """Issuer rotation: the sidecar serves a certificate from its cluster's new issuer."""
    return state.idle or state.on_current_issuer


def trusts_both(state: SidecarState) -> bool:
    """Anchor rotation begun: the sidecar accepts peers of the old and of the new anchor."""
    return state.idle or (OLD in state.bundle and NEW in state.bundle)


def trusts_only_new(state: SidecarState) -> bool:
    """Anchor rotation finished: the sidecar accepts only peers of the (formerly new) anchor."""
    return state.idle or (state.bundle == (CURRENT,) and state.anchor == CURRENT)


def pending(states: Sequence[SidecarState], done: Done) -> list[SidecarState]:
    """The sidecars that have not reached `done` yet (unreadable ones never have)."""
    return [s for s in states if s.error is not None or not done(s)]


# ---------------------------------------------------------------- whether an anchor rotation may finish


@dataclass(frozen=True)
class FinishCheck:
    """What still stands on the old anchor; finishing is safe only when all of it is empty."""

    issuers: tuple[str, ...]
    """Clusters whose issuer is not signed by the new anchor."""
    pods: tuple[str, ...]
    """Sidecars (cluster/pod) whose live certificate does not chain to the new anchor."""
    unreadable: tuple[str, ...]
    """Sidecars whose certificate could not be read, so cannot be vouched for."""

    @property
    def ready(self) -> bool:
        return not (self.issuers or self.pods or self.unreadable)

    def refusal(self) -> str:
        """One line: why `finish` refuses, and what to run."""
        parts = []
        if self.issuers:
            parts.append(
                f"the issuer{'s' if len(self.issuers) > 1 else ''} of cluster{'s' if len(self.issuers) > 1 else ''}"
                f" {', '.join(self.issuers)} still chain{'' if len(self.issuers) > 1 else 's'} to the old anchor"
                " (run `isthmus identity rotate issuer --all-clusters`)"
            )
        if self.pods:
            parts.append(
                f"pod{'s' if len(self.pods) > 1 else ''} {_few(self.pods)} still serve{'' if len(self.pods) > 1 else 's'}"
                " a certificate from the old anchor (rotate their cluster's issuer, or wait for their sidecars to"
                " re-certify: `isthmus identity rotate status`)"
            )
        if self.unreadable:
            parts.append(
                f"the certificate of pod{'s' if len(self.unreadable) > 1 else ''} {_few(self.unreadable)} could not"
                " be read (see `isthmus identity rotate status`)"
            )
        return "cannot finish the anchor rotation: " + "; ".join(parts) + "; nothing was changed"


def finish_check(
    anchors: Anchors, issuers: Mapping[str, x509.Certificate], states: Sequence[SidecarState]
) -> FinishCheck:
    if anchors.next is None:
        raise ValueError("no anchor rotation is in progress")
    return FinishCheck(
        issuers=tuple(sorted(c for c, cert in issuers.items() if anchors.role_of_signer(cert) != NEW)),
        pods=tuple(s.name for s in states if s.error is None and not s.idle and s.anchor != NEW),
        unreadable=tuple(s.name for s in states if s.error is not None),
    )


# ---------------------------------------------------------------- where the mesh stands


def phase(anchors: Anchors, issuers: Mapping[str, x509.Certificate], states: Sequence[SidecarState]) -> tuple[str, str]:
    """(phase, what to run next) for `rotate status`."""
    if not anchors.rotating:
        stale = pending(states, recertified)
        if stale:
            return "steady; not every sidecar is known to serve a certificate from its cluster's issuer", _wait_for(
                stale
            )
        return "steady: one trust anchor, every sidecar on its cluster's issuer", (
            "nothing to do (rotate an issuer: `isthmus identity rotate issuer`;"
            " the anchor: `isthmus identity rotate anchor begin`)"
        )
    if stale := pending(states, trusts_both):
        return "anchor rotation begun: the new anchor is still reaching the sidecars", (
            f"{_wait_for(stale)}, or run `isthmus identity rotate anchor begin` again to wait for them"
        )
    check = finish_check(anchors, issuers, states)
    if check.issuers:
        return "anchor rotation begun: every sidecar trusts the old and the new anchor", (
            "run `isthmus identity rotate issuer --all-clusters` (issuers from the new anchor)"
        )
    if not check.ready:
        return "anchor rotation: issuers are on the new anchor; sidecars are re-certifying", _wait_for(
            [s for s in states if s.name in check.pods or s.name in check.unreadable]
        )
    return "anchor rotation: everything chains to the new anchor", "run `isthmus identity rotate anchor finish`"


def _wait_for(states: Sequence[SidecarState]) -> str:
    return f"wait for {_few([s.name for s in states])}"


def _few(names: Sequence[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def next_generation(current: str | None) -> str:
    """The value that makes every watching sidecar agent re-certify: one more than the current one."""
    try:
        return str(int((current or "0").strip()) + 1)
    except ValueError:
        return "1"


def retired_name(prefix: str, cert: x509.Certificate, when: datetime) -> str:
    """A backup file name (without suffix) for a rotated-out CA that never collides with an earlier one."""
    return f"{prefix}-{when:%Y%m%dT%H%M%SZ}-{cert.serial_number:x}"[:80]
