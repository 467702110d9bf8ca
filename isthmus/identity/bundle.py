"""The trust bundle: the anchor certificates a mesh trusts, one normally, two during anchor rotation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization

from isthmus.identity.clock import Clock
from isthmus.identity.errors import SpiffeIdError, TrustMaterialError
from isthmus.identity.expiry import validity_problem
from isthmus.identity.spiffe import SpiffeId

_FINGERPRINT = hashes.SHA256()


@dataclass(frozen=True)
class TrustBundle:
    """Trust anchors (self-signed CA certificates), in order, without duplicates."""

    anchors: tuple[x509.Certificate, ...]
    source: str = "trust bundle"
    """Where the bundle came from (a file path), for error messages."""

    def __post_init__(self) -> None:
        if not self.anchors:
            raise TrustMaterialError(self.source, "holds no trust anchor; a mesh needs at least one")

    @classmethod
    def of(cls, anchors: Iterable[x509.Certificate], source: str = "trust bundle") -> TrustBundle:
        unique: dict[bytes, x509.Certificate] = {}
        for anchor in anchors:
            unique.setdefault(anchor.fingerprint(_FINGERPRINT), anchor)
        return cls(tuple(unique.values()), source)

    def with_anchor(self, anchor: x509.Certificate) -> TrustBundle:
        """This bundle plus `anchor`: the first step of anchor rotation (trust old and new)."""
        return TrustBundle.of((*self.anchors, anchor), self.source)

    def without_anchor(self, anchor: x509.Certificate) -> TrustBundle:
        """This bundle minus `anchor`: the last step of anchor rotation (drop the old one)."""
        gone = anchor.fingerprint(_FINGERPRINT)
        return TrustBundle(tuple(a for a in self.anchors if a.fingerprint(_FINGERPRINT) != gone), self.source)

    def pem(self) -> bytes:
        return b"".join(a.public_bytes(serialization.Encoding.PEM) for a in self.anchors)

    def signer_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        """The anchor whose key signed `certificate`, or None."""
        for anchor in self.anchors:
            if anchor.subject != certificate.issuer:
                continue
            try:
                certificate.verify_directly_issued_by(anchor)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return anchor
        return None

    def verify_workload_chain(self, chain: Sequence[x509.Certificate], clock: Clock) -> SpiffeId:
        """The SPIFFE ID of a workload chain (leaf, issuer[, anchor]) that leads to one of the anchors.

        For diagnostics (`isthmus identity show`) and tests; connections are
        verified by the TLS stacks themselves (Envoy, Python's ssl), not by this.
        Raises TrustMaterialError saying which link of the chain is wrong.
        """
        if len(chain) < 2:
            raise TrustMaterialError("certificate chain", "needs the workload certificate followed by its issuer")
        leaf, issuer = chain[0], chain[1]
        now = clock.now()
        anchor = self.signer_of(issuer)
        if anchor is None:
            raise TrustMaterialError(
                f"issuer {issuer.subject.rfc4514_string()!r}", f"is not signed by any anchor in {self.source}"
            )
        _require(_is_ca(issuer), "issuer", "is not a CA certificate")
        try:
            leaf.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise TrustMaterialError("workload certificate", "is not signed by the issuer that follows it") from None
        _require(not _is_ca(leaf), "workload certificate", "is a CA certificate; workload certificates never are")
        for what, cert in (("trust anchor", anchor), ("issuer", issuer), ("workload certificate", leaf)):
            problem = validity_problem(cert, now)
            _require(problem is None, what, problem or "")
        identity = _single_spiffe_id(leaf)
        _require(
            _trust_domain_permitted(issuer, identity.trust_domain),
            "workload certificate",
            f"names trust domain {identity.trust_domain!r}, which its issuer's name constraints do not permit",
        )
        return identity


def permitted_trust_domains(issuer: x509.Certificate) -> list[str] | None:
    """The URI hosts an issuer's name constraints permit, or None if it has no URI constraint."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    uris = [n.value for n in constraints.permitted_subtrees or () if isinstance(n, x509.UniformResourceIdentifier)]
    return uris or None


def _trust_domain_permitted(issuer: x509.Certificate, trust_domain: str) -> bool:
    permitted = permitted_trust_domains(issuer)
    if permitted is None:
        return True
    # RFC 5280: a leading '.' permits subdomains of the host, none permits exactly it.
    return any(trust_domain == p or (p.startswith(".") and trust_domain.endswith(p)) for p in permitted)


def _single_spiffe_id(leaf: x509.Certificate) -> SpiffeId:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise TrustMaterialError("workload certificate", "has no subjectAltName, so it names no identity") from None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    _require(len(uris) == 1, "workload certificate", f"must carry exactly one URI SAN, has {len(uris)}")
    try:
        return SpiffeId.parse(uris[0])
    except SpiffeIdError as e:
        raise TrustMaterialError("workload certificate", str(e)) from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _require(ok: bool, about: str, message: str) -> None:
    if not ok:
        raise TrustMaterialError(about, message)
