"""The workload side of issuance: make an EC P-256 key and a CSR for the workload's SPIFFE ID.

Runs in the sidecar agent, where the key is born and stays; so this module
imports only the stdlib and `cryptography` (no other isthmus module), to keep
the per-pod agent small.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh workload key; the only type the identity service signs."""
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(key: ec.EllipticCurvePrivateKey, spiffe_id: str) -> bytes:
    """A PEM CSR asking for exactly `spiffe_id` (a `spiffe://...` URI) as its only SAN."""
    if not spiffe_id.startswith("spiffe://"):
        raise ValueError(f"expected a spiffe:// URI, got {spiffe_id!r}")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))  # the identity lives in the SAN; the service ignores the subject
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM, for handing to Envoy; write it with mode 0600."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
