"""Platform tokens: minted by the platform, verified by the identity service, refused with a reason."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from isthmus.identity.clock import ManualClock
from isthmus.identity.errors import TokenRejected, TrustMaterialError
from isthmus.identity.tokens import (
    PREFIX,
    HmacTokenVerifier,
    load_token_secret,
    mint_pod_token,
    new_token_secret,
    verify_token,
    write_token_secret,
)
from tests.identity.helpers import WEB, real_now

SECRET = new_token_secret()
CLOCK = ManualClock(real_now())


def mint(
    cluster: str = "west", sa: str = "web", secret: bytes = SECRET, lifetime: timedelta = timedelta(hours=1)
) -> str:
    return mint_pod_token(secret, cluster, "default", sa, "web-7d9f-abc", CLOCK, lifetime)


def test_a_genuine_token_proves_its_service_account() -> None:
    token = mint()
    assert token.startswith(PREFIX)
    claims = verify_token(SECRET, token, cluster="west", clock=CLOCK)
    assert (claims.cluster, claims.namespace, claims.service_account, claims.pod) == (
        "west",
        "default",
        "web",
        "web-7d9f-abc",
    )
    assert claims.expires_at == claims.issued_at + timedelta(hours=1)
    assert HmacTokenVerifier(SECRET, "west", "cluster.local", CLOCK).verify(token) == WEB
    assert (
        HmacTokenVerifier(SECRET, "west", "example.org", CLOCK).verify(token).uri
        == "spiffe://example.org/ns/default/sa/web"
    )


def _swap_payload(token: str, **changes: object) -> str:
    body, mac = token[len(PREFIX) :].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(changes)
    new_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{PREFIX}{new_body}.{mac}"


def _flip_last(token: str) -> str:
    return token[:-1] + ("A" if token[-1] != "A" else "B")


CASES: list[tuple[str, Callable[[], str], str]] = [
    ("empty", lambda: "", "is not an Isthmus pod token"),
    ("garbage", lambda: "hello", "is not an Isthmus pod token"),
    ("jwt-shaped", lambda: "eyJhbGciOi.eyJzdWIiOi.c2ln", "is not an Isthmus pod token"),
    ("non-ascii", lambda: mint() + "é", "is not an Isthmus pod token"),
    ("extra-part", lambda: mint() + ".x", "is not an Isthmus pod token"),
    ("too-long", lambda: PREFIX + "a" * 5000 + ".b", "longer than 4096"),
    ("tampered-sa", lambda: _swap_payload(mint(), service_account="db"), "signature does not match"),
    ("tampered-expiry", lambda: _swap_payload(mint(), exp=2**40), "signature does not match"),
    ("tampered-mac", lambda: _flip_last(mint()), "signature does not match"),
    ("no-mac", lambda: mint().rsplit(".", 1)[0] + ".", "signature does not match"),
    ("other-secret", lambda: mint(secret=new_token_secret()), "signature does not match"),
    ("other-cluster", lambda: mint(cluster="east"), "is for cluster 'east'; this identity service serves 'west'"),
    ("expired", lambda: mint(lifetime=-timedelta(seconds=1)), "expired at"),
    ("bad-service-account", lambda: mint(sa="Bad_Name"), "names an invalid service account"),
]


@pytest.mark.parametrize(("make", "fragment"), [pytest.param(m, f, id=i) for i, m, f in CASES])
def test_bad_tokens_are_rejected(make: Callable[[], str], fragment: str) -> None:
    with pytest.raises(TokenRejected) as err:
        verify_token(SECRET, make(), cluster="west", clock=CLOCK)
    assert fragment in str(err.value)
    assert str(err.value).startswith("platform token")


def test_a_token_expires_with_the_clock() -> None:
    clock = ManualClock(CLOCK.now())
    token = mint_pod_token(SECRET, "west", "default", "web", "p", clock, timedelta(minutes=10))
    verify_token(SECRET, token, cluster="west", clock=clock)
    clock.advance(timedelta(minutes=10))
    with pytest.raises(TokenRejected, match="for pod default/p expired at"):
        verify_token(SECRET, token, cluster="west", clock=clock)


def test_a_token_from_the_future_is_refused() -> None:
    future = ManualClock(CLOCK.now() + timedelta(hours=1))
    token = mint_pod_token(SECRET, "west", "default", "web", "p", future, timedelta(hours=2))
    with pytest.raises(TokenRejected, match="issued in the future"):
        verify_token(SECRET, token, cluster="west", clock=CLOCK)


def test_secret_file_is_private_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "token.key"
    write_token_secret(path, SECRET)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token_secret(path) == SECRET
    path.write_text("zz not hex\n")
    with pytest.raises(TrustMaterialError, match="is not a hex-encoded token secret") as err:
        load_token_secret(path)
    assert str(path) in str(err.value)


def test_short_secrets_are_refused() -> None:
    with pytest.raises(TrustMaterialError, match="at least 32 bytes"):
        HmacTokenVerifier(b"short", "west", "cluster.local", CLOCK)
