"""Shared test material: a mesh's trust material on a hand-driven clock, CSR builders, an OpenSSL check.

Other stages' tests (the sidecar agent's, the CLI's) can build on these too.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from isthmus.identity.anchors import CertificateAuthority, create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle
from isthmus.identity.clock import ManualClock
from isthmus.identity.csr import generate_key, private_key_pem
from isthmus.identity.spiffe import SpiffeId, workload_id
from isthmus.identity.tokens import HmacTokenVerifier, mint_pod_token, new_token_secret

CLUSTER = "west"
TRUST_DOMAIN = "cluster.local"
WEB = workload_id("default", "web")
DB = workload_id("default", "db")
SHA256 = hashes.SHA256()
E = TypeVar("E", bound=x509.ExtensionType)


def real_now() -> datetime:
    # End-to-end checks go through OpenSSL, which reads the real clock, so test clocks start at real time.
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Mesh:
    """One mesh's trust material: an anchor, the issuer of one cluster, and the cluster's token secret."""

    clock: ManualClock = field(default_factory=lambda: ManualClock(real_now()))
    cluster: str = CLUSTER
    trust_domain: str = TRUST_DOMAIN
    anchor: CertificateAuthority = field(init=False)
    issuer: CertificateAuthority = field(init=False)
    secret: bytes = field(default_factory=new_token_secret)

    def __post_init__(self) -> None:
        self.anchor = create_trust_anchor(self.clock, trust_domain=self.trust_domain)
        self.issuer = create_issuer(self.anchor, self.cluster, self.clock, trust_domain=self.trust_domain)

    @property
    def bundle(self) -> TrustBundle:
        return TrustBundle.of([self.anchor.certificate])

    def verifier(self) -> HmacTokenVerifier:
        return HmacTokenVerifier(self.secret, self.cluster, self.trust_domain, self.clock)

    def token(self, identity: SpiffeId = WEB, *, pod: str = "web-1", lifetime: timedelta = timedelta(hours=1)) -> str:
        return mint_pod_token(
            self.secret, self.cluster, identity.namespace, identity.service_account, pod, self.clock, lifetime
        )


def make_csr(
    key: CertificateIssuerPrivateKeyTypes | None = None,
    sans: Sequence[x509.GeneralName] | None = None,
    *,
    ca: bool = False,
    key_cert_sign: bool = False,
    algorithm: hashes.SHA224 | hashes.SHA256 | hashes.SHA384 | None = SHA256,
    common_name: str | None = None,
) -> bytes:
    """A PEM CSR with exactly the requested contents; defaults to a good CSR for WEB."""
    key = key if key is not None else generate_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)] if common_name else [])
    )
    names = list(sans) if sans is not None else [x509.UniformResourceIdentifier(WEB.uri)]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if key_cert_sign:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def uri(value: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(value)


def tampered(csr_pem: bytes, old: bytes, new: bytes) -> bytes:
    """The CSR with bytes of its signed part replaced, signature left as it was."""
    der = x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER)
    assert old in der and len(old) == len(new)
    return x509.load_der_x509_csr(der.replace(old, new, 1)).public_bytes(serialization.Encoding.PEM)


def openssl_mtls(
    tmp: Path,
    server: tuple[bytes, ec.EllipticCurvePrivateKey],
    client: tuple[bytes, ec.EllipticCurvePrivateKey],
    anchors_pem: bytes,
) -> tuple[list[str], list[str]]:
    """A TLS 1.3 mutual handshake in memory, each side verifying the other with OpenSSL (strict).

    Returns the URI SANs each side saw of the other: (server's view of client, client's view of server).
    `server` and `client` are (PEM chain, key). Raises ssl.SSLError if either chain does not verify to `anchors_pem`.
    """
    server_ctx = _context(ssl.PROTOCOL_TLS_SERVER, tmp / "server", *server, anchors_pem)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = _context(ssl.PROTOCOL_TLS_CLIENT, tmp / "client", *client, anchors_pem)
    client_ctx.check_hostname = False
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server_side = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client_side = client_ctx.wrap_bio(c_in, c_out, server_side=False)
    done = {"server": False, "client": False}
    for _ in range(10):
        for name, side in (("client", client_side), ("server", server_side)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            s_in.write(c_out.read())
            c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3: the server verifies the client's certificate once it reads the client's Finished.
            client_side.write(b"ping")
            s_in.write(c_out.read())
            assert server_side.read(4) == b"ping"
            return _uris(server_side.getpeercert()), _uris(client_side.getpeercert())
    raise AssertionError("handshake did not finish")


def _context(
    protocol: int, directory: Path, chain: bytes, key: ec.EllipticCurvePrivateKey, anchors_pem: bytes
) -> ssl.SSLContext:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "chain.pem").write_bytes(chain)
    (directory / "key.pem").write_bytes(private_key_pem(key))
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.load_cert_chain(directory / "chain.pem", directory / "key.pem")
    ctx.load_verify_locations(cadata=anchors_pem.decode())
    return ctx


def _uris(peer: object) -> list[str]:
    assert isinstance(peer, dict)
    return [value for kind, value in peer.get("subjectAltName", ()) if kind == "URI"]
