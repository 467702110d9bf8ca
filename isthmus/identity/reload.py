"""Keeps a running identity server on the issuer and trust bundle its files hold now (rotation, no restart).

The files change by atomic rename only (a new inode each time), so a reader sees
the old file or the new one, never half of one. The issuer's key is renamed into
place before its certificate, so watching the certificate (and the bundle) is
enough: when the certificate has changed, its key is already there. A load that
fails (a hand-edited file, a key that does not match) leaves the server signing
as before, and is logged once per change of the files.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from isthmus.identity.bundle import TrustBundle
from isthmus.identity.clock import Clock
from isthmus.identity.errors import IdentityError
from isthmus.identity.load import load_issuer, load_trust_bundle
from isthmus.identity.server import IdentityServer

log = logging.getLogger(__name__)
CHECK_SECONDS = 1.0
"""How often the files are looked at: three stat calls, so cheap enough to do every second."""

Stamp = tuple[tuple[int, int, int] | None, ...]


@dataclass(frozen=True)
class TrustFiles:
    """Where one cluster's identity service finds what it signs with."""

    issuer_cert: Path
    issuer_key: Path
    bundle: Path


class TrustReloader:
    """Watches the issuer and bundle files of one identity server and switches it to what they hold."""

    def __init__(self, server: IdentityServer, files: TrustFiles, trust_domain: str, clock: Clock) -> None:
        self.server = server
        self.files = files
        self.trust_domain = trust_domain
        self.clock = clock
        # None, not the files' current stamp: the first check compares contents, so a change made
        # between building the server and starting this watch is not missed.
        self._loaded: Stamp | None = None
        self._failed: Stamp | None = None
        self.error: str | None = None
        """Why the files could not be used at the last check, or None."""

    def _stamp(self) -> Stamp:
        def one(path: Path) -> tuple[int, int, int] | None:
            try:
                st = os.stat(path)
            except OSError:
                return None
            return (st.st_ino, st.st_mtime_ns, st.st_size)

        return (one(self.files.issuer_cert), one(self.files.bundle))

    def check(self, *, force: bool = False) -> bool:
        """Load the files if they changed (or if `force`); True if the server switched to something new."""
        stamp = self._stamp()
        if stamp == self._loaded and not force:
            return False
        try:
            bundle = load_trust_bundle(self.files.bundle, self.clock)
            issuer = load_issuer(
                self.files.issuer_cert, self.files.issuer_key, bundle, self.clock, trust_domain=self.trust_domain
            )
            service = self.server.service
            new_issuer = _fingerprint(issuer.certificate) != _fingerprint(service.issuer.certificate)
            new_bundle = _bundle_ids(bundle) != _bundle_ids(service.bundle)
            if new_issuer or new_bundle:
                service.use_issuer(issuer, bundle)
            if new_issuer:
                # Its own certificate must chain to the new issuer too: once the old anchor is dropped,
                # agents would no longer trust one from the old issuer.
                self.server.renew_certificate()
        except IdentityError as e:
            self.error = str(e)
            if stamp != self._failed:
                log.error("keeping the current issuer and trust bundle: %s", e)
                self._failed = stamp
            return False
        self._loaded, self._failed, self.error = stamp, None, None
        if new_issuer or new_bundle:
            log.info(
                "now signing with issuer serial %x, trusting %d anchor(s)",
                issuer.certificate.serial_number,
                len(bundle.anchors),
            )
        return new_issuer or new_bundle

    def served(self) -> dict[str, Any]:
        """What the server signs with and hands out now, for the CLI to confirm a rotation step."""
        service = self.server.service
        issuer = service.issuer.certificate
        return {
            "issuer": {
                "fingerprint": _fingerprint(issuer),
                "serial": f"{issuer.serial_number:x}",
                "subject": issuer.subject.rfc4514_string(),
            },
            "bundle": list(_bundle_ids(service.bundle)),
            "own_certificate_serial": f"{self.server.certificate.serial:x}",
            "error": self.error,
        }

    async def run(self, interval: float = CHECK_SECONDS) -> None:
        while True:
            self.check()
            await asyncio.sleep(interval)


def _bundle_ids(bundle: TrustBundle) -> tuple[str, ...]:
    return tuple(_fingerprint(a) for a in bundle.anchors)


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()
