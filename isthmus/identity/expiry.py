"""When trust material expires, as pure findings for `isthmus check` and for the loaders.

`isthmus check` warns about an anchor or issuer that expires within 60 days and
fails on one that has expired (or is not valid yet, which means a clock or a
file is wrong); these functions decide, the CLI only renders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509

from isthmus.identity.clock import Clock

EXPIRY_WARNING = timedelta(days=60)


class ExpiryState(StrEnum):
    VALID = "valid"
    EXPIRING = "expiring"
    """Still valid, but ends within the warning window: rotate it soon."""
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"


@dataclass(frozen=True)
class ExpiryFinding:
    """How one certificate stands against the clock."""

    what: str
    """What the certificate is, for the reader, e.g. 'issuer for west (/path/issuer.crt)'."""
    subject: str
    not_before: datetime
    not_after: datetime
    state: ExpiryState
    remaining: timedelta
    """Time left until notAfter; negative once expired."""

    @property
    def failed(self) -> bool:
        return self.state in (ExpiryState.EXPIRED, ExpiryState.NOT_YET_VALID)

    @property
    def warning(self) -> bool:
        return self.state is ExpiryState.EXPIRING

    @property
    def message(self) -> str:
        end = f"{self.not_after:%Y-%m-%d %H:%M}Z"
        match self.state:
            case ExpiryState.VALID:
                return f"{self.what} is valid until {end} ({_days(self.remaining)} left)"
            case ExpiryState.EXPIRING:
                return f"{self.what} expires on {end}, in {_days(self.remaining)}: rotate it before then"
            case ExpiryState.EXPIRED:
                return f"{self.what} expired on {end}: rotate it now; certificates chaining to it are refused"
            case ExpiryState.NOT_YET_VALID:
                start = f"{self.not_before:%Y-%m-%d %H:%M}Z"
                return f"{self.what} is not valid before {start}: check this machine's clock"


def expiry_finding(
    what: str, certificate: x509.Certificate, now: datetime, warn_within: timedelta = EXPIRY_WARNING
) -> ExpiryFinding:
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    remaining = not_after - now
    if now < not_before:
        state = ExpiryState.NOT_YET_VALID
    elif now >= not_after:
        state = ExpiryState.EXPIRED
    elif remaining <= warn_within:
        state = ExpiryState.EXPIRING
    else:
        state = ExpiryState.VALID
    return ExpiryFinding(what, certificate.subject.rfc4514_string(), not_before, not_after, state, remaining)


def expiry_findings(
    certificates: Iterable[tuple[str, x509.Certificate]], clock: Clock, warn_within: timedelta = EXPIRY_WARNING
) -> list[ExpiryFinding]:
    """One finding per (description, certificate), all against the same instant."""
    now = clock.now()
    return [expiry_finding(what, cert, now, warn_within) for what, cert in certificates]


def validity_problem(certificate: x509.Certificate, now: datetime) -> str | None:
    """Why `certificate` is unusable at `now` (expired or not yet valid), or None."""
    finding = expiry_finding("certificate", certificate, now)
    if finding.state is ExpiryState.EXPIRED:
        return f"expired on {finding.not_after:%Y-%m-%d %H:%M:%S}Z; create or rotate to a new one"
    if finding.state is ExpiryState.NOT_YET_VALID:
        return f"is not valid before {finding.not_before:%Y-%m-%d %H:%M:%S}Z; check this machine's clock"
    return None


def _days(delta: timedelta) -> str:
    if delta >= timedelta(days=2):
        return f"{delta.days} days"
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} hours" if hours >= 1 else f"{int(delta.total_seconds() // 60)} minutes"
