"""Issuer and anchor rotation on the local platform: the files each step changes, checked, then written safely.

Every step checks everything before it writes anything (so bad input changes
nothing), writes each key before its certificate and every file by atomic
rename (the control planes reload on a change and never see half a file), and
keeps what it replaces as a backup. `bump_recertify` then tells a cluster's
sidecar agents to get new certificates. Which pods hold what is the CLI's to
read; this module only handles the mesh's own files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from isthmus.identity.anchors import ISSUER_LIFETIME, CertificateAuthority, create_issuer, create_trust_anchor
from isthmus.identity.bundle import TrustBundle, permitted_trust_domains
from isthmus.identity.clock import Clock
from isthmus.identity.errors import TrustMaterialError
from isthmus.identity.files import read_file, write_file
from isthmus.identity.load import (
    load_issuer,
    load_trust_anchor,
    load_trust_bundle,
    parse_certificates,
    parse_private_key,
)
from isthmus.identity.rotation import OLD, Anchors, fingerprint, next_generation, retired_name
from isthmus.identity.spiffe import DEFAULT_TRUST_DOMAIN, trust_domain_problem
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.trust import read_user_anchor, stored_issuers


@dataclass(frozen=True)
class StoredTrust:
    """The mesh's trust material as its files hold it now."""

    anchors: Anchors
    bundle: TrustBundle
    issuers: dict[str, x509.Certificate]
    """cluster -> its issuer's certificate."""

    @property
    def trust_domain(self) -> str:
        """The trust domain the issuers are made for (their name constraints), else the anchor's."""
        for issuer in self.issuers.values():
            for domain in permitted_trust_domains(issuer) or ():
                if trust_domain_problem(domain) is None:
                    return domain
        orgs = self.anchors.current.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        org = str(orgs[0].value) if orgs else ""
        return org if org and trust_domain_problem(org) is None else DEFAULT_TRUST_DOMAIN


def read_stored(paths: StatePaths, clock: Clock) -> StoredTrust:
    if not paths.anchor_cert.exists():
        raise TrustMaterialError(str(paths.home), "holds no mesh (no trust anchor yet); start one with `isthmus up`")
    current = _certificate(paths.anchor_cert)
    following = _certificate(paths.next_anchor_cert) if paths.next_anchor_cert.exists() else None
    return StoredTrust(
        anchors=Anchors(current, following),
        bundle=load_trust_bundle(paths.trust_bundle, clock),
        issuers={cluster: _certificate(path) for cluster, path in stored_issuers(paths).items()},
    )


# ---------------------------------------------------------------- issuers


def plan_issuers(
    paths: StatePaths,
    stored: StoredTrust,
    clusters: Sequence[str],
    user_issuer: tuple[Path, Path] | None,
    clock: Clock,
    lifetime: timedelta = ISSUER_LIFETIME,
) -> dict[str, CertificateAuthority]:
    """A new issuer per cluster, made from the signing anchor (the new one during an anchor rotation),
    or the user's own for one cluster; every one checked. Writes nothing."""
    domain = stored.trust_domain
    if user_issuer is not None:
        if len(clusters) != 1:
            raise TrustMaterialError(str(user_issuer[0]), "an issuer is for one cluster; clusters never share one")
        return {clusters[0]: _user_issuer(paths, stored, clusters[0], user_issuer, domain, clock)}
    cert_path, key_path = _signing_anchor_files(paths, stored)
    if not key_path.exists():
        which = "new trust anchor" if stored.anchors.rotating else "trust anchor"
        raise TrustMaterialError(
            f"the {which} ({cert_path})",
            "has no key in this mesh, so isthmus cannot make issuers from it: create one"
            " (isthmus identity issuer create --trust-anchor CERT --trust-anchor-key KEY --cluster C ...) and pass"
            " it with --cluster C --issuer CERT --issuer-key KEY",
        )
    anchor = load_trust_anchor(cert_path, key_path, clock)
    return {c: create_issuer(anchor, c, clock, trust_domain=domain, lifetime=lifetime) for c in clusters}


def _user_issuer(
    paths: StatePaths,
    stored: StoredTrust,
    cluster: str,
    files: tuple[Path, Path],
    domain: str,
    clock: Clock,
) -> CertificateAuthority:
    known = [a for a in (stored.anchors.current, stored.anchors.next) if a is not None]
    ca = load_issuer(files[0], files[1], TrustBundle.of(known, "this mesh's trust anchors"), clock, trust_domain=domain)
    if stored.anchors.role_of_signer(ca.certificate) == OLD:
        raise TrustMaterialError(
            str(files[0]),
            f"is signed by the old trust anchor; during an anchor rotation new issuers come from the new one"
            f" ({paths.next_anchor_cert})",
        )
    for owner, cert in stored.issuers.items():
        if fingerprint(cert) == fingerprint(ca.certificate):
            raise TrustMaterialError(str(files[0]), f"is already the issuer of cluster {owner}; pass a new one")
        if _public_key(cert) == _public_key(ca.certificate):
            raise TrustMaterialError(
                str(files[0]),
                f"shares its key with the issuer of cluster {owner}; a new issuer needs a key of its own",
            )
    return ca


def _signing_anchor_files(paths: StatePaths, stored: StoredTrust) -> tuple[Path, Path]:
    if stored.anchors.rotating:
        return paths.next_anchor_cert, paths.next_anchor_key
    return paths.anchor_cert, paths.anchor_key


def install_issuers(paths: StatePaths, issuers: Mapping[str, CertificateAuthority], when: datetime) -> dict[str, Path]:
    """Put each cluster's new issuer in place, the old one kept aside; returns cluster -> backup certificate."""
    backups = {}
    for cluster, issuer in issuers.items():
        old = _certificate(paths.issuer_cert(cluster))
        backups[cluster] = _keep(
            paths.issuer_cert(cluster), paths.issuer_key(cluster), paths.retired_issuers(cluster), "issuer", old, when
        )
        issuer.write(paths.issuer_cert(cluster), paths.issuer_key(cluster), overwrite=True)
    return backups


# ---------------------------------------------------------------- anchor


@dataclass(frozen=True)
class NewAnchor:
    certificate: x509.Certificate
    key_pem: bytes | None
    """None when the user keeps the key (then issuers must be brought with --issuer)."""
    resumed: bool = False
    """The rotation was begun before with this anchor; `begin` only waits for the sidecars again."""


def plan_anchor_begin(
    paths: StatePaths, stored: StoredTrust, cert_path: Path | None, key_path: Path | None, clock: Clock
) -> NewAnchor:
    """The anchor to rotate to: the user's, or a new one; checked against the mesh's. Writes nothing."""
    if key_path is not None and cert_path is None:
        raise TrustMaterialError(str(key_path), "is a trust anchor key; pass its certificate with --trust-anchor")
    cert, key_pem = read_user_anchor(cert_path, key_path, clock)
    if stored.anchors.next is not None:
        if cert is None or fingerprint(cert) == fingerprint(stored.anchors.next):
            return NewAnchor(stored.anchors.next, key_pem, resumed=True)
        raise TrustMaterialError(
            str(cert_path),
            f"differs from the new anchor of the rotation in progress ({paths.next_anchor_cert}); finish that one"
            " first (isthmus identity rotate anchor finish)",
        )
    if cert is None:
        created = create_trust_anchor(clock, trust_domain=stored.trust_domain)
        cert, key_pem = created.certificate, created.key_pem()
    current = stored.anchors.current
    if fingerprint(cert) == fingerprint(current):
        raise TrustMaterialError(str(cert_path), "is the mesh's trust anchor already; rotate to a new one")
    if cert.subject == current.subject:
        raise TrustMaterialError(
            str(cert_path),
            f"has the same subject as the mesh's trust anchor ({current.subject.rfc4514_string()}); while both are"
            " trusted, peers could not tell them apart: give the new anchor a name of its own",
        )
    return NewAnchor(cert, key_pem)


def install_anchor_begin(paths: StatePaths, stored: StoredTrust, new: NewAnchor) -> TrustBundle:
    """Store the new anchor beside the old one and make the bundle trust both; returns that bundle."""
    paths.next_anchor_cert.parent.mkdir(parents=True, exist_ok=True)
    if new.key_pem is not None:
        write_file(paths.next_anchor_key, new.key_pem, private=True, overwrite=True)
    elif not _key_matches(paths.next_anchor_key, new.certificate):
        paths.next_anchor_key.unlink(missing_ok=True)  # left over from an earlier rotation
    if not new.resumed:
        write_file(paths.next_anchor_cert, new.certificate.public_bytes(serialization.Encoding.PEM), private=False)
    bundle = stored.bundle.with_anchor(new.certificate)
    if bundle.anchors != stored.bundle.anchors:
        write_file(paths.trust_bundle, bundle.pem(), private=False, overwrite=True)
    return bundle


def install_anchor_finish(paths: StatePaths, stored: StoredTrust, when: datetime) -> tuple[TrustBundle, Path | None]:
    """Make the new anchor the mesh's only one; the old one is kept aside. Returns the bundle and the backup.

    The caller has checked that nothing chains to the old anchor any more. Safe to run
    again after a crash half way: each step sees whether it was done.
    """
    new = stored.anchors.next
    if new is None:
        raise TrustMaterialError(
            "anchor rotation", "none is in progress; start one with `isthmus identity rotate anchor begin`"
        )
    backup = None
    if fingerprint(stored.anchors.current) != fingerprint(new):
        backup = _keep(
            paths.anchor_cert, paths.anchor_key, paths.retired_anchors, "trust-anchor", stored.anchors.current, when
        )
    bundle = TrustBundle.of([new], str(paths.trust_bundle))
    write_file(paths.trust_bundle, bundle.pem(), private=False, overwrite=True)
    if _key_matches(paths.next_anchor_key, new):
        write_file(paths.anchor_key, read_file(paths.next_anchor_key, "private key"), private=True, overwrite=True)
    elif not _key_matches(paths.anchor_key, new):
        # The user keeps the new anchor's key; the old one's is in the backup.
        paths.anchor_key.unlink(missing_ok=True)
    write_file(paths.anchor_cert, new.public_bytes(serialization.Encoding.PEM), private=False, overwrite=True)
    # The certificate last: while it exists, the rotation is in progress and this can run again.
    paths.next_anchor_key.unlink(missing_ok=True)
    paths.next_anchor_cert.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        paths.next_anchor_cert.parent.rmdir()
    return bundle, backup


# ---------------------------------------------------------------- sidecars


def bump_recertify(paths: StatePaths, cluster: str) -> str:
    """Make every sidecar agent of `cluster` get a new certificate (they watch this file); returns the generation."""
    path = paths.recertify_file(cluster)
    current = path.read_text() if path.exists() else None
    generation = next_generation(current)
    write_file(path, f"{generation}\n".encode(), private=False, overwrite=True)
    return generation


# ---------------------------------------------------------------- helpers


def _keep(cert: Path, key: Path, folder: Path, prefix: str, old: x509.Certificate, when: datetime) -> Path:
    """Copy a CA's files into `folder` (once: a copy of the same certificate there already counts)."""
    folder.mkdir(parents=True, exist_ok=True)
    for existing in folder.glob(f"{prefix}-*.crt"):
        with contextlib.suppress(TrustMaterialError, IndexError):
            if fingerprint(_certificate(existing)) == fingerprint(old):
                return existing
    name = retired_name(prefix, old, when)
    if key.exists():
        write_file(folder / f"{name}.key", read_file(key, "private key"), private=True)
    write_file(folder / f"{name}.crt", read_file(cert, "certificate"), private=False)
    return folder / f"{name}.crt"


def _key_matches(path: Path, cert: x509.Certificate) -> bool:
    """Whether `path` holds the private key of `cert` (False when it is missing or unreadable)."""
    try:
        key = parse_private_key(read_file(path, "private key"), str(path))
    except TrustMaterialError:
        return False
    return _public_key_of(key.public_key()) == _public_key(cert)


def _certificate(path: Path) -> x509.Certificate:
    return parse_certificates(read_file(path, "certificate"), str(path), "certificate")[0]


def _public_key(cert: x509.Certificate) -> bytes:
    return _public_key_of(cert.public_key())


def _public_key_of(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
