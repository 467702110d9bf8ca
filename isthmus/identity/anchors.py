"""Creating the mesh's trust anchor and the per-cluster issuers it signs.

The anchor is a long-lived self-signed ECDSA P-256 CA whose key stays offline
once the issuers exist; each cluster gets its own issuer (pathlen 0, so it can
sign workload certificates and nothing that signs further). The issuer carries
a name constraint that limits it to URIs in the trust domain, so a stolen
issuer key cannot mint certificates that a name-constraint-aware verifier
would accept for web hostnames or other trust domains.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from isthmus.identity.clock import Clock
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.files import write_file
from isthmus.identity.spiffe import DEFAULT_TRUST_DOMAIN, check_trust_domain
from isthmus.model.validate import dns1123_label

ANCHOR_LIFETIME = timedelta(days=3650)
ISSUER_LIFETIME = timedelta(days=365)
# CA certificates are backdated a little so that a machine whose clock is a bit
# behind still accepts a freshly created anchor or issuer.
CA_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate with its private key: the trust anchor or a cluster's issuer."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    source: str = "<generated>"
    """Where it came from (the certificate file's path), for error messages."""
    authority_key_id: x509.AuthorityKeyIdentifier = field(init=False, repr=False, compare=False)
    """The AKI of every certificate this CA signs, computed once: signing is a hot path."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "authority_key_id", _authority_key_id(self.certificate))

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write(self, cert_path: Path, key_path: Path, *, overwrite: bool = False) -> None:
        """Write the key (mode 0600) and then the certificate (0644), each atomically.

        The key goes first: a crash in between leaves a key without a certificate,
        which is harmless, never a certificate whose key is lost.
        """
        if cert_path.resolve() == key_path.resolve():
            raise TrustMaterialError(str(cert_path), "certificate and key must go to different files")
        write_file(key_path, self.key_pem(), private=True, overwrite=overwrite)
        write_file(cert_path, self.certificate_pem(), private=False, overwrite=overwrite)


def _authority_key_id(ca: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key())  # type: ignore[arg-type]


def create_trust_anchor(
    clock: Clock, *, trust_domain: str = DEFAULT_TRUST_DOMAIN, lifetime: timedelta = ANCHOR_LIFETIME
) -> CertificateAuthority:
    """A new self-signed ECDSA P-256 root for one mesh (one trust domain)."""
    check_trust_domain(trust_domain)
    _check_lifetime(lifetime, "trust anchor")
    key = ec.generate_private_key(ec.SECP256R1())
    # A random suffix tells anchors apart during rotation, when old and new are trusted side by side.
    name = _name(trust_domain, f"Isthmus trust anchor {secrets.token_hex(4)}")
    now = clock.now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CA_BACKDATE)
        .not_valid_after(now + lifetime)
        # pathlen 1: anchor -> issuer -> workload, and no deeper.
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def create_issuer(
    anchor: CertificateAuthority,
    cluster: str,
    clock: Clock,
    *,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    lifetime: timedelta = ISSUER_LIFETIME,
) -> CertificateAuthority:
    """A new issuer for `cluster`, signed by `anchor`; it never outlives the anchor."""
    check_trust_domain(trust_domain)
    if problem := dns1123_label(cluster):
        raise TrustMaterialError(f"cluster name {cluster!r}", problem)
    _check_lifetime(lifetime, "issuer")
    now = clock.now()
    if now >= anchor.not_after:
        raise TrustMaterialError(
            anchor.source, f"trust anchor expired on {anchor.not_after:%Y-%m-%d}; create a new one"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(trust_domain, f"Isthmus issuer {cluster}"))
        .issuer_name(anchor.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - CA_BACKDATE, anchor.not_before))
        .not_valid_after(min(now + lifetime, anchor.not_after))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(
            # RFC 5280 §4.2.1.10: a URI constraint without a leading '.' matches exactly
            # that host, i.e. spiffe://<trust-domain>/... and nothing else.
            x509.NameConstraints(
                permitted_subtrees=[x509.UniformResourceIdentifier(trust_domain)], excluded_subtrees=None
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(anchor.authority_key_id, critical=False)
        .sign(anchor.key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def _name(trust_domain: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _check_lifetime(lifetime: timedelta, what: str) -> None:
    if lifetime <= timedelta(0):
        raise TrustMaterialError(what, f"lifetime must be positive, got {lifetime}")
