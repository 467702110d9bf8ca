"""Real certificates for tests: a mesh anchor, an issuer it signs, and SPIFFE workload
certificates, shaped as the identity service issues them; plus the SDS files a
sidecar agent would write from them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from isthmus.model.mesh import spiffe_id
from isthmus.proxy.sds_files import render_sds_files, write_sds_files

TRUST_DOMAIN = "cluster.local"
_DAY = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass(frozen=True)
class Workload:
    """One workload's certificate: what the agent hands to Envoy."""

    identity: str
    cert_pem: str
    key_pem: str
    issuer_pem: str

    @property
    def chain_pem(self) -> str:
        return self.cert_pem + self.issuer_pem


class TestMesh:
    """An anchor and one issuer, as one cluster of one mesh has them."""

    __test__ = False  # not a pytest class, despite the name

    def __init__(self, name: str = "isthmus test anchor", trust_domain: str = TRUST_DOMAIN) -> None:
        self.trust_domain = trust_domain
        self._anchor_key = ec.generate_private_key(ec.SECP256R1())
        anchor_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.anchor = self._ca(anchor_name, anchor_name, self._anchor_key, self._anchor_key, path_length=None)
        self._issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} issuer")])
        self.issuer = self._ca(issuer_name, anchor_name, self._issuer_key, self._anchor_key, path_length=0)

    @property
    def bundle_pem(self) -> str:
        return _pem(self.anchor)

    def _ca(
        self,
        subject: x509.Name,
        issuer: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        signer: ec.EllipticCurvePrivateKey,
        path_length: int | None,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - _DAY)
            .not_valid_after(_now() + 365 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(signer, hashes.SHA256())
        )

    def workload(
        self,
        namespace: str,
        service_account: str,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> Workload:
        identity = spiffe_id(self.trust_domain, namespace, service_account)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or _now() - datetime.timedelta(minutes=5))
            .not_valid_after(not_after or _now() + _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            # With an empty subject the SAN is the whole identity, so RFC 5280 makes it critical.
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._issuer_key.public_key()), critical=False
            )
            .sign(self._issuer_key, hashes.SHA256())
        )
        return Workload(identity, _pem(cert), _key_pem(key), _pem(self.issuer))

    def expired(self, namespace: str, service_account: str) -> Workload:
        return self.workload(namespace, service_account, _now() - 3 * _DAY, _now() - _DAY)

    def not_yet_valid(self, namespace: str, service_account: str) -> Workload:
        return self.workload(namespace, service_account, _now() + _DAY, _now() + 3 * _DAY)


def write_identity(directory: Path, mesh: TestMesh, workload: Workload) -> Path:
    """`directory` as a sidecar's IDENTITY_DIR holding `workload`'s certificate; returns it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = render_sds_files(workload.chain_pem, workload.key_pem, mesh.bundle_pem, str(directory))
    write_sds_files(directory, files)
    return directory


def write_pem_files(directory: Path, stem: str, workload: Workload) -> tuple[Path, Path]:
    """(certificate chain, key) as PEM files, for clients such as curl and Python ssl."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert.write_text(workload.chain_pem)
    key.write_text(workload.key_pem)
    key.chmod(0o600)
    return cert, key
