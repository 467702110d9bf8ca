"""Platform tokens: proof, minted by the platform when it starts a pod, of the pod's service account.

Like Kubernetes' bound service-account tokens: the platform binds (cluster,
namespace, service account, pod, expiry) under an HMAC-SHA256 key it shares
with the cluster's identity service, which verifies the MAC, the cluster and
the expiry and derives the SPIFFE ID it may sign. Compact form:

    isthmus-pod-token.v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>

The MAC covers the version prefix and the encoded claims exactly as sent, so
nothing is decoded before it is authenticated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from isthmus.identity.clock import Clock
from isthmus.identity.errors import SpiffeIdError, TokenRejected, TrustMaterialError
from isthmus.identity.files import read_file, write_file
from isthmus.identity.spiffe import DEFAULT_TRUST_DOMAIN, SpiffeId

PREFIX = "isthmus-pod-token.v1."
SECRET_BYTES = 32
MAX_TOKEN_CHARS = 4096
# Tokens are minted and checked by machines of one cluster; a small allowance keeps a
# token minted a moment "in the future" by a clock that runs a bit ahead usable.
ISSUED_AT_LEEWAY = timedelta(minutes=1)
ABOUT = "platform token"


class TokenVerifier(Protocol):
    """What the identity service needs from a token scheme: who the bearer is, or TokenRejected."""

    def verify(self, token: str) -> SpiffeId: ...


@dataclass(frozen=True)
class PodTokenClaims:
    """What a token says about its bearer."""

    cluster: str
    namespace: str
    service_account: str
    pod: str
    issued_at: datetime
    expires_at: datetime

    def spiffe_id(self, trust_domain: str) -> SpiffeId:
        return SpiffeId(trust_domain, self.namespace, self.service_account)


def new_token_secret() -> bytes:
    """A fresh per-cluster token key; the platform and the cluster's identity service share it."""
    return secrets.token_bytes(SECRET_BYTES)


def write_token_secret(path: Path, secret: bytes, *, overwrite: bool = False) -> None:
    """Store the key as hex text, mode 0600 from the first byte."""
    _check_secret(secret, str(path))
    write_file(path, secret.hex().encode() + b"\n", private=True, overwrite=overwrite)


def load_token_secret(path: Path) -> bytes:
    text = read_file(path, "token secret").strip()
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise TrustMaterialError(str(path), "is not a hex-encoded token secret; make a new one") from None
    _check_secret(secret, str(path))
    return secret


def mint_token(secret: bytes, claims: PodTokenClaims) -> str:
    """The compact token for `claims`, MAC'd with `secret`."""
    _check_secret(secret, "token secret")
    payload = {
        "cluster": claims.cluster,
        "namespace": claims.namespace,
        "service_account": claims.service_account,
        "pod": claims.pod,
        "iat": int(claims.issued_at.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
    }
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{PREFIX}{body}.{_mac(secret, body)}"


def mint_pod_token(
    secret: bytes, cluster: str, namespace: str, service_account: str, pod: str, clock: Clock, lifetime: timedelta
) -> str:
    """What the platform calls when it starts (or refreshes the token of) a pod."""
    now = clock.now().replace(microsecond=0)
    return mint_token(secret, PodTokenClaims(cluster, namespace, service_account, pod, now, now + lifetime))


def verify_token(secret: bytes, token: str, *, cluster: str, clock: Clock) -> PodTokenClaims:
    """The claims of a genuine, current token for `cluster`; else TokenRejected."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenRejected(ABOUT, f"is longer than {MAX_TOKEN_CHARS} characters; it is not an Isthmus pod token")
    if not token.isascii() or not token.startswith(PREFIX) or token.count(".") != PREFIX.count(".") + 1:
        raise TokenRejected(ABOUT, f"is not an Isthmus pod token (expected '{PREFIX}<claims>.<mac>')")
    body, _, mac = token[len(PREFIX) :].partition(".")
    if not hmac.compare_digest(mac.encode(), _mac(secret, body).encode()):
        raise TokenRejected(
            ABOUT, "signature does not match: the token was altered, or minted for another cluster or with an old key"
        )
    claims = _claims(body)
    if claims.cluster != cluster:
        raise TokenRejected(ABOUT, f"is for cluster {claims.cluster!r}; this identity service serves {cluster!r}")
    now = clock.now()
    if now >= claims.expires_at:
        raise TokenRejected(
            ABOUT,
            f"for pod {claims.namespace}/{claims.pod} expired at {claims.expires_at:%Y-%m-%d %H:%M:%S}Z;"
            " the platform should have refreshed it — check that it is running",
        )
    if claims.issued_at > now + ISSUED_AT_LEEWAY:
        raise TokenRejected(ABOUT, f"is issued in the future ({claims.issued_at:%Y-%m-%d %H:%M:%S}Z); check the clocks")
    return claims


class HmacTokenVerifier:
    """The local platform's token scheme, for one cluster of one trust domain."""

    def __init__(self, secret: bytes, cluster: str, trust_domain: str, clock: Clock) -> None:
        _check_secret(secret, "token secret")
        self._secret = secret
        self.cluster = cluster
        self.trust_domain = trust_domain
        self._clock = clock

    def verify(self, token: str) -> SpiffeId:
        claims = verify_token(self._secret, token, cluster=self.cluster, clock=self._clock)
        return claims.spiffe_id(self.trust_domain)


def _claims(body: str) -> PodTokenClaims:
    # Only reached with a valid MAC, so a malformed body means a platform bug, not an attack.
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise TokenRejected(ABOUT, "claims are not base64url-encoded JSON") from None
    if not isinstance(data, dict):
        raise TokenRejected(ABOUT, "claims are not a JSON object")
    strings = ("cluster", "namespace", "service_account", "pod")
    if not all(isinstance(data.get(k), str) and data[k] for k in strings):
        raise TokenRejected(ABOUT, f"claims must hold non-empty strings {', '.join(strings)}")
    if not all(type(data.get(k)) is int for k in ("iat", "exp")):
        raise TokenRejected(ABOUT, "claims must hold integer times iat and exp")
    try:
        claims = PodTokenClaims(
            data["cluster"],
            data["namespace"],
            data["service_account"],
            data["pod"],
            datetime.fromtimestamp(data["iat"], UTC),
            datetime.fromtimestamp(data["exp"], UTC),
        )
        claims.spiffe_id(DEFAULT_TRUST_DOMAIN)  # namespace and service account must make a valid SPIFFE ID
    except (OverflowError, OSError, ValueError):
        raise TokenRejected(ABOUT, "claims hold an out-of-range time") from None
    except SpiffeIdError as e:
        raise TokenRejected(ABOUT, f"names an invalid {e.about}: {e.message}") from None
    return claims


def _mac(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, (PREFIX + body).encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _check_secret(secret: bytes, about: str) -> None:
    if len(secret) < SECRET_BYTES:
        raise TrustMaterialError(about, f"token secret must be at least {SECRET_BYTES} bytes, got {len(secret)}")
