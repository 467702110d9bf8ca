"""The signing rules: which CSRs get a workload certificate, and what that certificate says.

Pure: takes the issuer, the CSR bytes, the identity the caller's token proved
and a clock; returns the certificate chain or raises CsrRejected (the request
is bad), IdentityMismatch (it asks for someone else's identity) or
TrustMaterialError (the issuer cannot sign now). Nothing of the CSR reaches the
certificate except its public key: subject, extensions and attributes the
caller asked for are checked for intent and then ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from isthmus.identity.anchors import CertificateAuthority
from isthmus.identity.clock import Clock
from isthmus.identity.csr_rules import check_csr
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.spiffe import SpiffeId

DEFAULT_LIFETIME = timedelta(hours=24)
# Backdating covers peers whose clocks run a little behind the identity service's.
DEFAULT_BACKDATE = timedelta(minutes=1)


@dataclass(frozen=True)
class SigningPolicy:
    """How long workload certificates live."""

    lifetime: timedelta = DEFAULT_LIFETIME
    """Lifetime of a workload certificate from the moment it is signed; capped by the issuer's own expiry."""
    backdate: timedelta = DEFAULT_BACKDATE
    """How far before the signing moment notBefore is set, to tolerate clock skew between machines."""

    def __post_init__(self) -> None:
        if self.lifetime < timedelta(seconds=1):
            raise ValueError(f"certificate lifetime must be at least one second, got {self.lifetime}")
        if self.backdate < timedelta(0):
            raise ValueError(f"backdate must not be negative, got {self.backdate}")


DEFAULT_POLICY = SigningPolicy()


@dataclass(frozen=True)
class SignedCertificate:
    """A workload certificate and the issuer certificate that completes its chain to the anchor."""

    leaf: x509.Certificate
    issuer: x509.Certificate
    identity: SpiffeId

    @property
    def not_before(self) -> datetime:
        return self.leaf.not_valid_before_utc

    @property
    def expires_at(self) -> datetime:
        return self.leaf.not_valid_after_utc

    @property
    def serial(self) -> int:
        return self.leaf.serial_number

    def chain_pem(self) -> bytes:
        """Leaf first, then the issuer: the order TLS stacks expect in a certificate chain file."""
        return self.leaf.public_bytes(serialization.Encoding.PEM) + self.issuer.public_bytes(serialization.Encoding.PEM)


def sign_csr(
    issuer: CertificateAuthority,
    csr_pem: bytes,
    identity: SpiffeId,
    clock: Clock,
    policy: SigningPolicy = DEFAULT_POLICY,
) -> SignedCertificate:
    """Check `csr_pem` against `identity` (what the caller proved) and sign it, or raise."""
    csr = check_csr(csr_pem, identity)
    public_key = csr.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)  # check_csr admits P-256 only
    return issue_certificate(issuer, public_key, identity, clock, policy)


def issue_certificate(
    issuer: CertificateAuthority,
    public_key: ec.EllipticCurvePublicKey,
    identity: SpiffeId,
    clock: Clock,
    policy: SigningPolicy = DEFAULT_POLICY,
) -> SignedCertificate:
    """Sign a workload certificate for `identity` over a key already judged acceptable.

    Used directly only where the key was made by the caller itself (the identity
    service's own serving certificate); everything from outside goes through sign_csr.
    """
    now = clock.now()
    if now >= issuer.not_after:
        raise TrustMaterialError(
            issuer.source,
            f"issuer expired on {issuer.not_after:%Y-%m-%d %H:%M:%S}Z and cannot sign; rotate the cluster's issuer",
        )
    if now < issuer.not_before:
        raise TrustMaterialError(
            issuer.source,
            f"issuer is not valid before {issuer.not_before:%Y-%m-%d %H:%M:%S}Z; check this machine's clock",
        )
    # A certificate must never outlive its issuer: verifiers would reject the chain
    # from the issuer's expiry on, however long the leaf itself says it is good.
    not_after = min(now + policy.lifetime, issuer.not_after)
    not_before = max(now - policy.backdate, issuer.not_before)
    leaf = (
        x509.CertificateBuilder()
        # An empty subject with a critical SAN is what RFC 5280 §4.2.1.6 prescribes when the
        # identity lives only in the SAN; a CN could not hold a long SPIFFE ID anyway (64 chars).
        .subject_name(x509.Name([]))
        .issuer_name(issuer.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_KEY_USAGE, critical=True)
        .add_extension(_LEAF_EXTENDED_KEY_USAGE, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(issuer.authority_key_id, critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
    return SignedCertificate(leaf, issuer.certificate, identity)


_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
# Every workload is both a server (inbound) and a client (outbound) of mTLS.
_LEAF_EXTENDED_KEY_USAGE = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
