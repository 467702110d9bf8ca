"""Expiry findings for `isthmus check`: warn within 60 days, fail when expired or not yet valid."""

from __future__ import annotations

from datetime import timedelta

import pytest

from isthmus.identity.anchors import create_trust_anchor
from isthmus.identity.clock import ManualClock
from isthmus.identity.expiry import ExpiryState, expiry_findings
from tests.identity.helpers import real_now

START = real_now()
ANCHOR = create_trust_anchor(ManualClock(START), lifetime=timedelta(days=365))


@pytest.mark.parametrize(
    ("elapsed", "state", "failed", "warning", "fragment"),
    [
        pytest.param(timedelta(0), ExpiryState.VALID, False, False, "is valid until", id="fresh"),
        pytest.param(timedelta(days=304), ExpiryState.VALID, False, False, "61 days left", id="61-days-left"),
        pytest.param(
            timedelta(days=305), ExpiryState.EXPIRING, False, True, "in 60 days: rotate it", id="60-days-left"
        ),
        pytest.param(timedelta(days=364, hours=20), ExpiryState.EXPIRING, False, True, "in 4 hours", id="hours-left"),
        pytest.param(timedelta(days=365), ExpiryState.EXPIRED, True, False, "expired on", id="at-expiry"),
        pytest.param(timedelta(days=900), ExpiryState.EXPIRED, True, False, "rotate it now", id="long-expired"),
        pytest.param(
            -timedelta(days=1), ExpiryState.NOT_YET_VALID, True, False, "check this machine's clock", id="future"
        ),
    ],
)
def test_expiry_states(elapsed: timedelta, state: ExpiryState, failed: bool, warning: bool, fragment: str) -> None:
    clock = ManualClock(START + elapsed)
    (finding,) = expiry_findings([("trust anchor (anchor.crt)", ANCHOR.certificate)], clock)
    assert (finding.state, finding.failed, finding.warning) == (state, failed, warning)
    assert finding.message.startswith("trust anchor (anchor.crt) ")
    assert fragment in finding.message
    assert finding.remaining == ANCHOR.not_after - clock.now()


def test_warning_window_is_configurable() -> None:
    clock = ManualClock(START + timedelta(days=300))
    (finding,) = expiry_findings([("anchor", ANCHOR.certificate)], clock, warn_within=timedelta(days=30))
    assert finding.state is ExpiryState.VALID
