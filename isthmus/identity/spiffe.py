"""SPIFFE IDs of workloads: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.

Only this one shape is accepted, because every identity Isthmus issues or
checks is a Kubernetes service account; anything else is a bug or an attack.
Namespace and service-account syntax is Kubernetes' own, so every service
account Kubernetes accepts has an ID and no ID can smuggle in a `/`, `..` or
percent-escape that a path-based policy could misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from isthmus.identity.errors import SpiffeIdError
from isthmus.model.validate import dns1123_label, dns1123_subdomain

DEFAULT_TRUST_DOMAIN = "cluster.local"
SCHEME = "spiffe://"

# SPIFFE-ID spec §2.1: lowercase letters, digits, '.', '-', '_'. We also ask for an
# alphanumeric first and last character, so the domain is a usable URI host for
# an issuer's name constraint.
_TRUST_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?")
_TRUST_DOMAIN_MAX = 255
_ID_MAX = 2048  # SPIFFE-ID spec §2.3


def trust_domain_problem(trust_domain: str) -> str | None:
    """What is wrong with a trust domain name, or None."""
    if not trust_domain:
        return "trust domain is empty; use a name such as 'cluster.local' or 'example.org'"
    if len(trust_domain) > _TRUST_DOMAIN_MAX:
        return f"trust domain is longer than {_TRUST_DOMAIN_MAX} characters"
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        return (
            f"trust domain {trust_domain!r} may hold only lowercase letters, digits, '.', '-' and '_',"
            " and must start and end with a letter or digit (e.g. 'cluster.local')"
        )
    return None


def check_trust_domain(trust_domain: str) -> str:
    """Return the trust domain unchanged, or raise SpiffeIdError saying what is wrong with it."""
    problem = trust_domain_problem(trust_domain)
    if problem:
        raise SpiffeIdError("trust domain", problem)
    return trust_domain


@dataclass(frozen=True, order=True)
class SpiffeId:
    """The identity of one Kubernetes service account in one trust domain."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        check_trust_domain(self.trust_domain)
        if problem := dns1123_label(self.namespace):
            raise SpiffeIdError(f"namespace {self.namespace!r}", problem)
        if problem := dns1123_subdomain(self.service_account):
            raise SpiffeIdError(f"service account {self.service_account!r}", problem)

    @property
    def path(self) -> str:
        return f"/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def uri(self) -> str:
        return f"{SCHEME}{self.trust_domain}{self.path}"

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, uri: str, *, trust_domain: str | None = None) -> SpiffeId:
        """Parse a workload SPIFFE ID; with `trust_domain`, also require that trust domain.

        Raises SpiffeIdError naming the ID and the rule it breaks.
        """
        about = f"SPIFFE ID {uri!r}"
        if len(uri) > _ID_MAX:
            raise SpiffeIdError(about[:80] + "…", f"is longer than {_ID_MAX} characters")
        if not uri.lower().startswith(SCHEME):
            raise SpiffeIdError(about, f"must start with {SCHEME!r}")
        if not uri.startswith(SCHEME):
            raise SpiffeIdError(about, f"the scheme must be written in lowercase: {SCHEME!r}")
        rest = uri[len(SCHEME) :]
        for char, what in (("?", "a query"), ("#", "a fragment"), ("%", "percent-escapes"), ("@", "user info")):
            if char in rest:
                raise SpiffeIdError(about, f"must not contain {what} ({char!r})")
        domain, slash, path = rest.partition("/")
        if ":" in domain:
            raise SpiffeIdError(about, "must not name a port")
        if problem := trust_domain_problem(domain):
            raise SpiffeIdError(about, problem)
        if trust_domain is not None and domain != trust_domain:
            raise SpiffeIdError(about, f"belongs to trust domain {domain!r}, expected {trust_domain!r}")
        parts = path.split("/") if slash else []
        if len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa":
            raise SpiffeIdError(
                about,
                f"the path must be /ns/<namespace>/sa/<service-account> (e.g. {SCHEME}{domain}/ns/default/sa/web)",
            )
        try:
            return cls(domain, parts[1], parts[3])
        except SpiffeIdError as e:
            raise SpiffeIdError(about, f"{e.about} {e.message}") from None


def workload_id(namespace: str, service_account: str, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> SpiffeId:
    """The SPIFFE ID of a service account; raises SpiffeIdError if a part is not a valid name."""
    return SpiffeId(trust_domain, namespace, service_account)
