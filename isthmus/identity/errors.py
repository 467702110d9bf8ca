"""Errors of the identity stage; each names the file or object it is about and says what to do.

    IsthmusError (isthmus.model.errors)
    └── IdentityError            base: `about` (a file path or object) and a message
        ├── SpiffeIdError        a string that is not a valid SPIFFE ID or trust domain
        ├── TrustMaterialError   an anchor, issuer, bundle or secret that cannot be used
        │                        (unreadable, not PEM, wrong key, not a CA, expired, …)
        ├── CsrRejected          a CSR that will not be signed           (HTTP 400)
        ├── IdentityMismatch     a CSR for an identity the token does not prove (HTTP 403)
        └── TokenRejected        a missing, forged or expired platform token (HTTP 401)

The identity service maps the last three to HTTP statuses; a TrustMaterialError
raised while signing means the service itself is misconfigured (HTTP 503).
"""

from __future__ import annotations

from isthmus.model.errors import IsthmusError, one_line


class IdentityError(IsthmusError):
    """A problem with one identity object; renders as `ABOUT: MESSAGE` on one line."""

    def __init__(self, about: str, message: str) -> None:
        self.about = about
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        return one_line(f"{self.about}: {self.message}" if self.about else self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class SpiffeIdError(IdentityError):
    """A SPIFFE ID or trust domain that breaks the syntax rules."""


class TrustMaterialError(IdentityError):
    """An anchor, issuer, trust bundle or token secret (file or object) that cannot be used."""


class CsrRejected(IdentityError):
    """A certificate signing request that will not be signed as it stands."""


class IdentityMismatch(IdentityError):
    """A CSR that asks for an identity other than the one the caller's token proves.

    Carries both so that logs and the caller see what was asked and what was proven.
    """

    def __init__(self, about: str, requested: str, proven: str) -> None:
        self.requested = requested
        self.proven = proven
        super().__init__(
            about,
            f"asks for identity {requested!r} but the caller's token proves {proven!r};"
            " a workload can only get a certificate for its own service account",
        )


class TokenRejected(IdentityError):
    """A platform token that is missing, malformed, forged, expired or for another cluster."""
