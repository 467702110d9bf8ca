"""Which certificate signing requests the identity service accepts, each refusal saying why.

A CSR is accepted when it is one well-formed PEM request, self-signed by an
EC P-256 key, asks for nothing a CA would have, and names as its only SAN
exactly the URI of the identity the caller proved. Checks run cheapest and
most telling first, so garbage costs almost nothing and a forged identity is
reported as such (403) rather than as a format problem (400).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes

from isthmus.identity.errors import CsrRejected, IdentityMismatch
from isthmus.identity.keys import ACCEPTED, describe_key, is_p256
from isthmus.identity.spiffe import SpiffeId

MAX_CSR_BYTES = 16 * 1024  # a P-256 CSR is about 500 bytes; the limit only stops abuse
ABOUT = "certificate signing request"
_PEM_MARKERS = (b"-----BEGIN CERTIFICATE REQUEST-----", b"-----BEGIN NEW CERTIFICATE REQUEST-----")
_STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


def check_csr(csr_pem: bytes, identity: SpiffeId) -> x509.CertificateSigningRequest:
    """The parsed CSR if it may be signed for `identity`; else CsrRejected or IdentityMismatch."""
    csr = _parse(csr_pem, identity)
    _check_key_and_signature(csr)
    extensions = _extensions(csr)
    _check_not_a_ca(extensions)
    _check_subject_alternative_names(extensions, identity)
    return csr


def _parse(csr_pem: bytes, identity: SpiffeId) -> x509.CertificateSigningRequest:
    if len(csr_pem) > MAX_CSR_BYTES:
        raise CsrRejected(ABOUT, f"is {len(csr_pem)} bytes, more than the {MAX_CSR_BYTES} a CSR may have")
    if b"PRIVATE KEY-----" in csr_pem:
        raise CsrRejected(
            ABOUT, "holds a private key; send only the CSR (the key must never leave the workload, make a new one)"
        )
    if not any(marker in csr_pem for marker in _PEM_MARKERS):
        raise CsrRejected(
            ABOUT,
            "is not PEM: expected '-----BEGIN CERTIFICATE REQUEST-----'"
            f" (make one for {identity.uri} with an EC P-256 key)",
        )
    try:
        return x509.load_pem_x509_csr(csr_pem)
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion) as e:
        raise CsrRejected(ABOUT, f"is not a valid PEM CSR ({_short(e)}); make a new one") from None


def _check_key_and_signature(csr: x509.CertificateSigningRequest) -> None:
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CsrRejected(ABOUT, f"has a public key Isthmus cannot read ({_short(e)}); use {ACCEPTED}") from None
    if not is_p256(key):
        raise CsrRejected(ABOUT, f"has a key of type {describe_key(key)}; workload keys must be {ACCEPTED}")
    try:
        valid = csr.is_signature_valid
        algorithm = csr.signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm) as e:
        raise CsrRejected(ABOUT, f"has a signature Isthmus cannot check ({_short(e)})") from None
    if not valid:
        raise CsrRejected(ABOUT, "signature does not verify: the CSR was altered, or not signed by the key it carries")
    if not isinstance(algorithm, _STRONG_HASHES):
        name = algorithm.name if algorithm else "none"
        raise CsrRejected(ABOUT, f"is signed with hash {name}; sign it with SHA-256")


def _extensions(csr: x509.CertificateSigningRequest) -> x509.Extensions:
    try:
        return csr.extensions
    except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        raise CsrRejected(ABOUT, f"has malformed extensions ({_short(e)})") from None


def _check_not_a_ca(extensions: x509.Extensions) -> None:
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise CsrRejected(ABOUT, "asks to be a CA (basicConstraints CA:TRUE); workload certificates never are")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
        if usage.key_cert_sign or usage.crl_sign:
            raise CsrRejected(
                ABOUT, "asks for CA key usages (keyCertSign/cRLSign); workload certificates cannot sign others"
            )
    except x509.ExtensionNotFound:
        pass


def _check_subject_alternative_names(extensions: x509.Extensions, identity: SpiffeId) -> None:
    try:
        names = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        raise CsrRejected(ABOUT, f"has no subjectAltName; put exactly one URI SAN in it: {identity.uri}") from None
    uris = [n.value for n in names if isinstance(n, x509.UniformResourceIdentifier)]
    # A URI for someone else is an attempt at another identity: say so (403) before any format complaint.
    for uri in uris:
        if uri != identity.uri:
            raise IdentityMismatch(ABOUT, requested=uri, proven=identity.uri)
    others = [_describe_name(n) for n in names if not isinstance(n, x509.UniformResourceIdentifier)]
    if others:
        listed = ", ".join(others[:5]) + (", …" if len(others) > 5 else "")
        raise CsrRejected(ABOUT, f"asks for SANs other than the workload's URI ({listed}); ask only for {identity.uri}")
    if len(uris) != 1:
        what = "no URI SAN" if not uris else f"{len(uris)} URI SANs"
        raise CsrRejected(ABOUT, f"has {what}; it needs exactly one: {identity.uri}")


def _describe_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"dirName:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    return type(name).__name__


def _short(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."
