"""The mesh's trust material on the local platform: one anchor, an issuer per cluster, token secrets.

Made once and reused by every later `isthmus up`; several clusters of one mesh
share the anchor and never an issuer. A user may bring their own anchor (with
or without its key) and issuers (`isthmus up --trust-anchor ... --issuer ...`):
`plan_user_trust` checks all of it against what the mesh already holds before
anything starts, and `install` stores it where the daemon then finds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from isthmus.identity.anchors import CertificateAuthority, create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle
from isthmus.identity.clock import Clock, SystemClock
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.files import read_file, write_file
from isthmus.identity.keys import ACCEPTED, describe_key, is_p256
from isthmus.identity.load import (
    load_issuer,
    load_trust_anchor,
    load_trust_bundle,
    parse_certificates,
    parse_trust_bundle,
)
from isthmus.identity.tokens import new_token_secret, write_token_secret
from isthmus.platform.local.paths import StatePaths

_START_AFRESH = (
    "to start this mesh afresh with it, run `isthmus down --purge` (deletes the mesh's state) and `isthmus up` again"
)


def ensure_anchor(paths: StatePaths, trust_domain: str) -> None:
    clock = SystemClock()
    paths.anchor_cert.parent.mkdir(parents=True, exist_ok=True)
    if not paths.anchor_cert.exists():
        anchor = create_trust_anchor(clock, trust_domain=trust_domain)
        anchor.write(paths.anchor_cert, paths.anchor_key)
    if not paths.trust_bundle.exists() and paths.legacy_trust_bundle.exists():
        paths.trust_bundle.parent.mkdir(parents=True, exist_ok=True)
        paths.legacy_trust_bundle.rename(paths.trust_bundle)  # may hold two anchors mid-rotation: keep it
    if not paths.trust_bundle.exists():
        paths.trust_bundle.parent.mkdir(parents=True, exist_ok=True)
        write_file(paths.trust_bundle, paths.anchor_cert.read_bytes(), private=False)
    # Fail now, with the file named, rather than in every pod later.
    load_trust_bundle(paths.trust_bundle, clock)


def ensure_cluster(paths: StatePaths, cluster: str, trust_domain: str) -> None:
    clock = SystemClock()
    paths.issuer_cert(cluster).parent.mkdir(parents=True, exist_ok=True)
    if not paths.issuer_cert(cluster).exists():
        # During an anchor rotation a new cluster starts on the new anchor, like every re-made issuer.
        cert, key = (
            (paths.next_anchor_cert, paths.next_anchor_key)
            if paths.next_anchor_cert.exists()
            else (paths.anchor_cert, paths.anchor_key)
        )
        if not key.exists():
            raise TrustMaterialError(f"cluster {cluster}", _no_issuer_without_anchor_key([cluster]))
        anchor = load_trust_anchor(cert, key, clock)
        issuer = create_issuer(anchor, cluster, clock, trust_domain=trust_domain)
        issuer.write(paths.issuer_cert(cluster), paths.issuer_key(cluster))
    if not paths.token_secret(cluster).exists():
        write_token_secret(paths.token_secret(cluster), new_token_secret())


@dataclass(frozen=True)
class UserTrust:
    """Trust material a user hands to `isthmus up`; every field optional."""

    anchor_cert: Path | None = None
    """--trust-anchor: the mesh's anchor certificate (one self-signed CA)."""
    anchor_key: Path | None = None
    """--trust-anchor-key: its private key; with it, isthmus creates the issuers the user did not bring."""
    issuers: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    """--issuer/--issuer-key: cluster -> (certificate, key) of that cluster's issuer."""


@dataclass(frozen=True)
class TrustPlan:
    """What `install` writes: only what the mesh does not hold yet, all of it already checked."""

    anchor_cert: x509.Certificate | None = None
    anchor_key_pem: bytes | None = None
    issuers: dict[str, CertificateAuthority] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.anchor_cert is None and self.anchor_key_pem is None and not self.issuers


def stored_issuers(paths: StatePaths) -> dict[str, Path]:
    """cluster -> issuer certificate file, for every cluster whose issuer this mesh holds."""
    root = paths.home / "clusters"
    if not root.is_dir():
        return {}
    return {d.name: paths.issuer_cert(d.name) for d in sorted(root.iterdir()) if paths.issuer_cert(d.name).is_file()}


def plan_user_trust(
    paths: StatePaths, user: UserTrust, clusters: Sequence[str], trust_domain: str, clock: Clock
) -> TrustPlan:
    """Check the user's anchor and issuers against each other and against what the mesh holds.

    clusters: those this `up` creates or starts; each needs an issuer, brought or made.
    Raises TrustMaterialError naming the file and the problem; reads files, writes nothing.
    """
    if user.anchor_key is not None and user.anchor_cert is None:
        raise TrustMaterialError(
            str(user.anchor_key), "is a trust anchor key; pass its certificate with --trust-anchor"
        )
    stored_anchor = _stored_anchor(paths, clock)
    anchor, anchor_key_pem = read_user_anchor(user.anchor_cert, user.anchor_key, clock)
    if anchor is not None and stored_anchor is not None and _fingerprint(anchor) != _fingerprint(stored_anchor):
        raise TrustMaterialError(
            str(user.anchor_cert),
            f"differs from the trust anchor this mesh already uses ({paths.anchor_cert},"
            f" {stored_anchor.subject.rfc4514_string()}); a mesh has one anchor: to replace it while the mesh runs,"
            f" rotate it (isthmus identity rotate anchor begin --trust-anchor {user.anchor_cert} ...), or {_START_AFRESH}",
        )
    trusted = anchor or stored_anchor
    if user.issuers and trusted is None:
        first = next(iter(user.issuers.values()))[0]
        raise TrustMaterialError(
            str(first),
            "is an issuer, but this mesh has no trust anchor yet: pass the anchor that signed it with --trust-anchor",
        )
    issuers = _user_issuers(paths, user, trusted, trust_domain, clock)
    key_at_hand = anchor_key_pem is not None or paths.anchor_key.exists()
    needing = [c for c in clusters if c not in issuers and not paths.issuer_cert(c).exists()]
    if needing and trusted is not None and not key_at_hand:
        raise TrustMaterialError(
            f"cluster{'s' if len(needing) > 1 else ''} {', '.join(needing)}", _no_issuer_without_anchor_key(needing)
        )
    return TrustPlan(
        anchor_cert=anchor if stored_anchor is None else None,
        anchor_key_pem=anchor_key_pem if not paths.anchor_key.exists() else None,
        issuers=issuers,
    )


def install(paths: StatePaths, plan: TrustPlan) -> None:
    """Store a checked plan: the anchor's key before its certificate, each issuer's key before its certificate."""
    paths.anchor_cert.parent.mkdir(parents=True, exist_ok=True)
    if plan.anchor_key_pem is not None:
        write_file(paths.anchor_key, plan.anchor_key_pem, private=True)
    if plan.anchor_cert is not None:
        write_file(paths.anchor_cert, plan.anchor_cert.public_bytes(serialization.Encoding.PEM), private=False)
    for cluster, issuer in plan.issuers.items():
        paths.issuer_cert(cluster).parent.mkdir(parents=True, exist_ok=True)
        issuer.write(paths.issuer_cert(cluster), paths.issuer_key(cluster))


def _no_issuer_without_anchor_key(clusters: Sequence[str]) -> str:
    example = clusters[0]
    return (
        "has no issuer, and isthmus cannot create one because it does not hold the trust anchor's key;"
        f" create one (isthmus identity issuer create --cluster {example} ...) and pass it with"
        f" --issuer {example}=CERT --issuer-key {example}=KEY, or pass the anchor's key with --trust-anchor-key"
    )


def _stored_anchor(paths: StatePaths, clock: Clock) -> x509.Certificate | None:
    if not paths.anchor_cert.exists():
        return None
    return load_trust_bundle(paths.anchor_cert, clock).anchors[0]


def read_user_anchor(
    cert_path: Path | None, key_path: Path | None, clock: Clock
) -> tuple[x509.Certificate | None, bytes | None]:
    """A user's anchor certificate (one self-signed P-256 CA) and, if given, its key (PEM), each checked."""
    if cert_path is None:
        return None, None
    if key_path is not None:
        ca = load_trust_anchor(cert_path, key_path, clock)
        return ca.certificate, ca.key_pem()
    source = str(cert_path)
    data = read_file(cert_path, "trust anchor certificate")
    certs = parse_certificates(data, source, "trust anchor certificate")
    if len(certs) != 1:
        raise TrustMaterialError(source, f"holds {len(certs)} certificates; pass exactly one trust anchor")
    anchor = parse_trust_bundle(data, source, clock).anchors[0]
    if not is_p256(anchor.public_key()):
        raise TrustMaterialError(
            source, f"has a key of type {describe_key(anchor.public_key())}; Isthmus CAs use {ACCEPTED} keys"
        )
    return anchor, None


def _user_issuers(
    paths: StatePaths, user: UserTrust, anchor: x509.Certificate | None, trust_domain: str, clock: Clock
) -> dict[str, CertificateAuthority]:
    """The user's issuers that the mesh does not hold yet, each checked; the same one again is no change."""
    if not user.issuers or anchor is None:
        return {}
    bundle = TrustBundle.of([anchor], str(user.anchor_cert or paths.anchor_cert))
    owners = {_key_id(_read_certificate(p)): c for c, p in stored_issuers(paths).items()}
    out: dict[str, CertificateAuthority] = {}
    for cluster, (cert_path, key_path) in user.issuers.items():
        ca = load_issuer(cert_path, key_path, bundle, clock, trust_domain=trust_domain)
        key_id = _key_id(ca.certificate)
        owner = owners.get(key_id)
        if owner is not None and owner != cluster:
            raise TrustMaterialError(
                str(cert_path),
                f"is (or shares its key with) the issuer of cluster {owner}; clusters never share an issuer:"
                f" create one for {cluster} (isthmus identity issuer create --cluster {cluster} ...)",
            )
        stored = paths.issuer_cert(cluster)
        if stored.exists():
            if _fingerprint(_read_certificate(stored)) != _fingerprint(ca.certificate):
                raise TrustMaterialError(
                    str(cert_path),
                    f"differs from the issuer cluster {cluster} already uses ({stored}); to replace it while the"
                    f" mesh runs, rotate it (isthmus identity rotate issuer --cluster {cluster} --issuer {cert_path}"
                    f" --issuer-key {key_path}), or {_START_AFRESH}",
                )
            continue
        owners[key_id] = cluster
        out[cluster] = ca
    return out


def _read_certificate(path: Path) -> x509.Certificate:
    """The one certificate in a stored PEM file (no validity checks: this only identifies it)."""
    return parse_certificates(read_file(path, "certificate"), str(path), "certificate")[0]


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def _key_id(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
