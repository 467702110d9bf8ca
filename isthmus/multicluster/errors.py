"""What can go wrong in the multi-cluster stage, and what a link's controller does about it.

MirrorError (ValueError)      an export that cannot be mirrored (pure; the
                              controller records it as a refusal, never retries)
LinkError                     base of what a link's controller meets at run time;
│                             carries the linked cluster's name
├── Retryable                 try again after a back-off
│   ├── RemoteUnavailable     the remote's link API cannot be reached, or broke off
│   └── LocalWriteFailed      the local platform failed or refused a write (a user's
│                             Service appeared in a mirror's place); decide again
└── Permanent                 retrying the same cannot help: logged, shown by `check`
    ├── CredentialRefused     the remote refuses the link credential (revoked, altered,
    │                         issued to another cluster): link again
    └── BadLinkSecret         the link Secret is malformed: link again
"""

from __future__ import annotations


class MirrorError(ValueError):
    """An export that cannot be mirrored; the message says why and what to do."""


class LinkError(Exception):
    """A failure of the link to cluster `cluster`; the message says what to do."""

    def __init__(self, cluster: str, message: str) -> None:
        super().__init__(message)
        self.cluster = cluster
        self.message = message


class Retryable(LinkError):
    pass


class RemoteUnavailable(Retryable):
    pass


class LocalWriteFailed(Retryable):
    pass


class Permanent(LinkError):
    pass


class CredentialRefused(Permanent):
    pass


class BadLinkSecret(Permanent):
    pass
