"""Loading trust anchors, issuers and trust bundles from PEM, refusing anything unusable.

Every refusal names the file and the problem and says what to do, because
these files come from users (`--trust-anchor`, `--issuer`) and from Secrets,
and a mesh started on a wrong file fails far from its cause.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from isthmus.identity.anchors import CertificateAuthority
from isthmus.identity.bundle import TrustBundle, permitted_trust_domains
from isthmus.identity.clock import Clock
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.expiry import validity_problem
from isthmus.identity.files import read_file
from isthmus.identity.keys import ACCEPTED, describe_key, is_p256

_CERT_MARKER = b"-----BEGIN CERTIFICATE-----"
_KEY_MARKER = b"PRIVATE KEY-----"


def load_trust_anchor(cert_path: Path, key_path: Path, clock: Clock) -> CertificateAuthority:
    """The anchor (self-signed CA) and its key, e.g. to create issuers from it."""
    cert_pem, key_pem = read_file(cert_path, "certificate"), read_file(key_path, "private key")
    return parse_trust_anchor(cert_pem, key_pem, str(cert_path), str(key_path), clock)


def load_issuer(
    cert_path: Path, key_path: Path, bundle: TrustBundle, clock: Clock, *, trust_domain: str | None = None
) -> CertificateAuthority:
    """A cluster issuer and its key; it must be signed by an anchor in `bundle`."""
    cert_pem, key_pem = read_file(cert_path, "certificate"), read_file(key_path, "private key")
    return parse_issuer(cert_pem, key_pem, str(cert_path), str(key_path), bundle, clock, trust_domain=trust_domain)


def load_trust_bundle(path: Path, clock: Clock) -> TrustBundle:
    """One or more anchor certificates (no keys) from one PEM file."""
    return parse_trust_bundle(read_file(path, "trust bundle"), str(path), clock)


def parse_trust_anchor(
    cert_pem: bytes, key_pem: bytes, cert_source: str, key_source: str, clock: Clock
) -> CertificateAuthority:
    ca = _parse_ca(cert_pem, key_pem, cert_source, key_source, clock, "trust anchor")
    if not _self_signed(ca.certificate):
        raise TrustMaterialError(
            cert_source,
            f"is not self-signed (its issuer is {ca.certificate.issuer.rfc4514_string()!r}); a trust anchor must"
            " be a root CA. If this is a cluster issuer, pass it as the issuer instead",
        )
    return ca


def parse_issuer(
    cert_pem: bytes,
    key_pem: bytes,
    cert_source: str,
    key_source: str,
    bundle: TrustBundle,
    clock: Clock,
    *,
    trust_domain: str | None = None,
) -> CertificateAuthority:
    ca = _parse_ca(cert_pem, key_pem, cert_source, key_source, clock, "issuer")
    if _self_signed(ca.certificate):
        # Signing workloads straight with the anchor would put the anchor's key online in every cluster.
        raise TrustMaterialError(
            cert_source,
            "is self-signed: this is a trust anchor, not an issuer; create an issuer from it"
            " (isthmus identity issuer create --trust-anchor ...)",
        )
    if bundle.signer_of(ca.certificate) is None:
        raise TrustMaterialError(
            cert_source,
            f"is not signed by the trust anchor in {bundle.source}; create the issuer from this mesh's"
            " anchor (isthmus identity issuer create --trust-anchor ...)",
        )
    permitted = permitted_trust_domains(ca.certificate)
    if trust_domain is not None and permitted is not None and trust_domain not in permitted:
        raise TrustMaterialError(
            cert_source,
            f"may only issue for trust domain(s) {', '.join(permitted)} (name constraints), not {trust_domain!r};"
            " create an issuer for this trust domain",
        )
    return ca


def parse_trust_bundle(data: bytes, source: str, clock: Clock) -> TrustBundle:
    now = clock.now()
    anchors = parse_certificates(data, source, "trust bundle")
    for n, cert in enumerate(anchors, 1):
        about = f"{source} (certificate {n}, {cert.subject.rfc4514_string()})" if len(anchors) > 1 else source
        if not _is_ca(cert):
            raise TrustMaterialError(about, "is not a CA certificate; a trust bundle holds only trust anchors")
        if not _self_signed(cert):
            raise TrustMaterialError(about, "is not self-signed; a trust bundle holds only root CAs (trust anchors)")
        if problem := validity_problem(cert, now):
            raise TrustMaterialError(about, f"{problem} (remove it from the bundle if it was rotated out)")
    return TrustBundle.of(anchors, source)


def parse_certificates(data: bytes, source: str, what: str) -> list[x509.Certificate]:
    """Every certificate in a PEM input; a TrustMaterialError if there is none or one is malformed."""
    if not data.strip():
        raise TrustMaterialError(source, f"is empty; expected a PEM {what}")
    if _CERT_MARKER not in data:
        if _KEY_MARKER in data:
            raise TrustMaterialError(source, "holds a private key, not a certificate: are the two files swapped?")
        if data[:1] == b"\x30":
            raise TrustMaterialError(
                source,
                f"is not PEM (it looks like DER); convert it: openssl x509 -inform der -in {source} -out FILE.pem",
            )
        raise TrustMaterialError(source, f"is not PEM: expected '{_CERT_MARKER.decode()}'")
    try:
        return x509.load_pem_x509_certificates(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TrustMaterialError(source, f"holds a malformed PEM certificate ({e})") from None


def parse_private_key(data: bytes, source: str) -> ec.EllipticCurvePrivateKey:
    """An unencrypted EC P-256 private key from PEM (PKCS#8 or SEC1)."""
    if _KEY_MARKER not in data:
        if _CERT_MARKER in data:
            raise TrustMaterialError(source, "holds a certificate, not a private key: are the two files swapped?")
        raise TrustMaterialError(source, "is not a PEM private key: expected '-----BEGIN PRIVATE KEY-----'")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TrustMaterialError(
            source,
            "is encrypted; Isthmus needs an unencrypted key, protected by file mode 0600"
            f" (decrypt it: openssl pkey -in {source} -out FILE)",
        ) from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TrustMaterialError(source, f"holds a malformed or unsupported private key ({e})") from None
    if not is_p256(key):
        raise TrustMaterialError(source, f"holds a key of type {describe_key(key)}; Isthmus CAs use {ACCEPTED} keys")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _parse_ca(
    cert_pem: bytes, key_pem: bytes, cert_source: str, key_source: str, clock: Clock, what: str
) -> CertificateAuthority:
    certs = parse_certificates(cert_pem, cert_source, f"{what} certificate")
    if len(certs) != 1:
        raise TrustMaterialError(
            cert_source, f"holds {len(certs)} certificates; put only the {what}'s own certificate in this file"
        )
    cert = certs[0]
    key = parse_private_key(key_pem, key_source)
    if cert.public_key() != key.public_key():
        raise TrustMaterialError(
            key_source, f"does not belong to the certificate in {cert_source} (their public keys differ)"
        )
    if not _is_ca(cert):
        raise TrustMaterialError(
            cert_source, f"is not a CA certificate (basicConstraints CA:TRUE is missing), so it cannot be the {what}"
        )
    if not _may_sign_certificates(cert):
        raise TrustMaterialError(cert_source, f"has a key usage without keyCertSign, so it cannot be the {what}")
    if problem := validity_problem(cert, clock.now()):
        raise TrustMaterialError(cert_source, f"{what} {problem}")
    return CertificateAuthority(cert, key, cert_source)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _may_sign_certificates(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return True  # RFC 5280: no keyUsage extension means no restriction


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
