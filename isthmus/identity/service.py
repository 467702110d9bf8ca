"""The identity service's decisions: one HTTP request in, one response out, no sockets.

`POST /v1/certificates` with `Authorization: Bearer <platform token>` and
`{"csr": "<PEM>"}` returns `{"certificate_chain": "<PEM leaf + issuer>",
"expires_at": "<RFC 3339>", ...}`. The token is checked before the body is
looked at, so an unauthenticated caller learns nothing about CSR rules.
Statuses: 400 bad request or CSR, 401 bad token, 403 identity not proven,
404/405 wrong path/method, 503 the issuer cannot sign.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from isthmus.identity.anchors import CertificateAuthority
from isthmus.identity.bundle import TrustBundle, permitted_trust_domains
from isthmus.identity.clock import Clock
from isthmus.identity.errors import CsrRejected, IdentityMismatch, TokenRejected, TrustMaterialError
from isthmus.identity.http_wire import HttpRequest, HttpResponse
from isthmus.identity.signing import DEFAULT_POLICY, SignedCertificate, SigningPolicy, sign_csr
from isthmus.identity.spiffe import DEFAULT_TRUST_DOMAIN, SpiffeId, check_trust_domain
from isthmus.identity.tokens import TokenVerifier

CERTIFICATES_PATH = "/v1/certificates"
SERVICE_NAMESPACE = "isthmus-system"
SERVICE_ACCOUNT = "isthmus-identity"

log = logging.getLogger(__name__)


def service_identity(trust_domain: str) -> SpiffeId:
    """The SPIFFE ID the identity service presents; agents check for exactly this."""
    return SpiffeId(trust_domain, SERVICE_NAMESPACE, SERVICE_ACCOUNT)


@dataclass
class IssuanceStats:
    """Counters for metrics: certificates issued, and requests refused by HTTP status."""

    issued: int = 0
    refused: Counter[int] = field(default_factory=Counter)


class IdentityService:
    """Signs workload CSRs for the identity a platform token proves, with one cluster's issuer."""

    def __init__(
        self,
        issuer: CertificateAuthority,
        bundle: TrustBundle,
        tokens: TokenVerifier,
        clock: Clock,
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        policy: SigningPolicy = DEFAULT_POLICY,
    ) -> None:
        self.trust_domain = check_trust_domain(trust_domain)
        self._bundle = bundle
        self.use_issuer(issuer)
        self.tokens = tokens
        self.clock = clock
        self.policy = policy
        self.stats = IssuanceStats()

    @property
    def issuer(self) -> CertificateAuthority:
        return self._issuer

    @property
    def bundle(self) -> TrustBundle:
        return self._bundle

    def use_issuer(self, issuer: CertificateAuthority, bundle: TrustBundle | None = None) -> None:
        """Sign with `issuer` from now on (issuer rotation); optionally a new bundle too (anchor rotation)."""
        bundle = bundle or self._bundle
        if bundle.signer_of(issuer.certificate) is None:
            raise TrustMaterialError(issuer.source, f"issuer is not signed by any anchor in {bundle.source}")
        permitted = permitted_trust_domains(issuer.certificate)
        if permitted is not None and self.trust_domain not in permitted:
            # Everything it signed would fail verification against its own name constraints.
            raise TrustMaterialError(
                issuer.source,
                f"issuer may only sign for {', '.join(permitted)}, not trust domain {self.trust_domain!r}",
            )
        self._issuer, self._bundle = issuer, bundle

    def handle(self, request: HttpRequest) -> HttpResponse:
        response = self._decide(request)
        if response.status != 200:
            self.stats.refused[response.status] += 1
        return response

    def _decide(self, request: HttpRequest) -> HttpResponse:
        if request.target.split("?", 1)[0] != CERTIFICATES_PATH:
            return _error(404, f"no such endpoint; POST {CERTIFICATES_PATH}")
        if request.method != "POST":
            return _error(405, f"{CERTIFICATES_PATH} accepts only POST", (("Allow", "POST"),))
        try:
            identity = self.tokens.verify(_bearer_token(request))
        except TokenRejected as e:
            log.info("refused a certificate request: %s", e)
            return _error(401, str(e), (("WWW-Authenticate", 'Bearer realm="isthmus-identity"'),))
        if identity.trust_domain != self.trust_domain:
            log.error("token verifier proves %s, outside trust domain %s", identity, self.trust_domain)
            return _error(503, "the identity service is misconfigured: its token verifier serves another trust domain")
        try:
            signed = sign_csr(self._issuer, _csr_from_body(request.body), identity, self.clock, self.policy)
        except IdentityMismatch as e:
            log.warning("refused a certificate: %s", e)
            return _error(403, str(e))
        except CsrRejected as e:
            log.info("refused a CSR from %s: %s", identity, e)
            return _error(400, str(e))
        except TrustMaterialError as e:
            log.error("cannot sign certificates: %s", e)
            return _error(503, f"the identity service cannot sign now: {e}")
        self.stats.issued += 1
        log.debug("issued %s serial %x until %s", identity, signed.serial, signed.expires_at)
        return HttpResponse(200, self._issued_body(signed))

    def _issued_body(self, signed: SignedCertificate) -> dict[str, object]:
        return {
            "certificate_chain": signed.chain_pem().decode(),
            "expires_at": rfc3339(signed.expires_at),
            "not_before": rfc3339(signed.not_before),
            "spiffe_id": signed.identity.uri,
            "serial": f"{signed.serial:x}",
            # The anchors, so that agents pick up a new anchor during rotation with their next renewal.
            "trust_bundle": self._bundle.pem().decode(),
        }


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _bearer_token(request: HttpRequest) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise TokenRejected(
            "request", "has no 'Authorization: Bearer <token>' header; send the token the platform gave the pod"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected("request", "Authorization header must be 'Bearer <token>'")
    return token.strip()


def _csr_from_body(body: bytes) -> bytes:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise CsrRejected("request body", 'is not JSON; send {"csr": "<PEM certificate signing request>"}') from None
    if not isinstance(data, dict) or not isinstance(data.get("csr"), str):
        raise CsrRejected("request body", 'must be a JSON object {"csr": "<PEM certificate signing request>"}')
    csr: str = data["csr"]
    try:
        return csr.encode("ascii")
    except UnicodeEncodeError:
        raise CsrRejected("certificate signing request", "is not PEM: it holds non-ASCII characters") from None


def _error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    return HttpResponse(status, {"error": message}, headers)
