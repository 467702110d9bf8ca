"""Link credentials: what lets another cluster read this cluster's exports, and nothing else.

A credential is minted by the cluster being linked to (the "remote") for one
linking cluster, and is valid while its id is on the remote's list of issued
credentials; revoking removes the id. Compact form, MAC'd with the remote's own
link key (never shared), so a credential cannot be forged or moved to another
remote:

    isthmus-link.v1.<base64url(JSON {"remote", "cluster", "id"})>.<base64url(HMAC-SHA256)>

The list lives in the remote's state (`StatePaths.link_credentials`), written
atomically; one credential per linking cluster, so issuing a new one for a
cluster revokes the one it had.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.files import read_file, write_file

PREFIX = "isthmus-link.v1."
KEY_BYTES = 32
MAX_CREDENTIAL_CHARS = 2048


class CredentialRefused(Exception):
    """A credential the link API does not accept; the message says why (never the credential itself)."""


@dataclass(frozen=True)
class Claims:
    remote: str
    """The cluster that issued it: the only one whose API accepts it."""
    cluster: str
    """The linking cluster it was issued to."""
    id: str


@dataclass(frozen=True)
class Issued:
    """One entry of a remote's list of valid credentials."""

    id: str
    cluster: str
    issued_at: str


def mint(key: bytes, claims: Claims) -> str:
    body = _b64(json.dumps(asdict(claims), separators=(",", ":"), sort_keys=True).encode())
    return f"{PREFIX}{body}.{_mac(key, body)}"


def read_claims(key: bytes, credential: str, *, remote: str) -> Claims:
    """The claims of a genuine credential minted by `remote` with `key`; else CredentialRefused."""
    if len(credential) > MAX_CREDENTIAL_CHARS or not credential.isascii() or not credential.startswith(PREFIX):
        raise CredentialRefused(f"not an Isthmus link credential (expected '{PREFIX}<claims>.<mac>')")
    body, dot, mac = credential[len(PREFIX) :].partition(".")
    if not dot or not hmac.compare_digest(mac.encode(), _mac(key, body).encode()):
        raise CredentialRefused(f"the credential was not issued by cluster {remote} (or was altered)")
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        claims = Claims(str(data["remote"]), str(data["cluster"]), str(data["id"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise CredentialRefused("the credential's claims are malformed") from None
    if claims.remote != remote:
        raise CredentialRefused(f"the credential is for cluster {claims.remote}, not {remote}")
    return claims


class CredentialStore:
    """One remote cluster's link key and list of valid credentials, on disk."""

    def __init__(self, cluster: str, key_path: Path, list_path: Path) -> None:
        self.cluster = cluster
        self.key_path = key_path
        self.list_path = list_path

    def key(self) -> bytes:
        if not self.key_path.exists():
            self.key_path.parent.mkdir(parents=True, exist_ok=True)
            try:
                write_file(self.key_path, secrets.token_bytes(KEY_BYTES).hex().encode() + b"\n", private=True)
            except TrustMaterialError:
                if not self.key_path.exists():  # not merely lost a race with another writer
                    raise
        key = bytes.fromhex(read_file(self.key_path, "link key").decode().strip())
        if len(key) < KEY_BYTES:
            raise TrustMaterialError(str(self.key_path), f"link key must be {KEY_BYTES} bytes; delete it to make one")
        return key

    def issued(self) -> list[Issued]:
        if not self.list_path.exists():
            return []
        try:
            data = json.loads(self.list_path.read_text())
            return [Issued(str(i["id"]), str(i["cluster"]), str(i["issued_at"])) for i in data["credentials"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            # Failing closed: an unreadable list admits nobody until it is repaired.
            raise TrustMaterialError(str(self.list_path), f"cannot read the link credentials ({e})") from None

    def issue(self, linking_cluster: str, now: datetime | None = None) -> str:
        """A new credential for `linking_cluster`, replacing (revoking) any it had."""
        claims = Claims(self.cluster, linking_cluster, secrets.token_hex(16))
        when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        kept = [i for i in self.issued() if i.cluster != linking_cluster]
        self._write([*kept, Issued(claims.id, linking_cluster, when)])
        return mint(self.key(), claims)

    def revoke(self, credential_id: str) -> Issued | None:
        """Remove a credential from the list; returns it, or None if it was not there."""
        issued = self.issued()
        gone = next((i for i in issued if i.id == credential_id), None)
        if gone is not None:
            self._write([i for i in issued if i.id != credential_id])
        return gone

    def verify(self, credential: str, claimed_cluster: str) -> Claims:
        """Accept a credential presented by a client saying it is `claimed_cluster`; else CredentialRefused."""
        claims = read_claims(self.key(), credential, remote=self.cluster)
        if claims.cluster != claimed_cluster:
            raise CredentialRefused(f"the credential was issued to cluster {claims.cluster}, not {claimed_cluster}")
        if not any(i.id == claims.id and i.cluster == claims.cluster for i in self.issued()):
            raise CredentialRefused(
                f"the credential has been revoked; link again (isthmus multicluster link --cluster-name {self.cluster})"
            )
        return claims

    def _write(self, issued: list[Issued]) -> None:
        body = json.dumps({"credentials": [asdict(i) for i in issued]}, indent=2, sort_keys=True)
        self.list_path.parent.mkdir(parents=True, exist_ok=True)
        write_file(self.list_path, body.encode() + b"\n", private=True, overwrite=True)


def credential_id(credential: str) -> str | None:
    """The id inside a credential, read without the key (to revoke it); None when malformed."""
    if not credential.startswith(PREFIX):
        return None
    body = credential[len(PREFIX) :].partition(".")[0]
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return str(data["id"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, (PREFIX + body).encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
