"""The mesh's trust material on the local platform: one anchor, an issuer per cluster, token secrets.

Made once and reused by every later `isthmus up`; several clusters of one mesh
share the anchor and never an issuer.
"""

from __future__ import annotations

from isthmus.identity.anchors import create_issuer, create_trust_anchor
from isthmus.identity.clock import SystemClock
from isthmus.identity.files import write_file
from isthmus.identity.load import load_trust_anchor, load_trust_bundle
from isthmus.identity.tokens import new_token_secret, write_token_secret
from isthmus.platform.local.paths import StatePaths


def ensure_anchor(paths: StatePaths, trust_domain: str) -> None:
    clock = SystemClock()
    paths.anchor_cert.parent.mkdir(parents=True, exist_ok=True)
    if not paths.anchor_cert.exists():
        anchor = create_trust_anchor(clock, trust_domain=trust_domain)
        anchor.write(paths.anchor_cert, paths.anchor_key)
    if not paths.trust_bundle.exists():
        write_file(paths.trust_bundle, paths.anchor_cert.read_bytes(), private=False)
    # Fail now, with the file named, rather than in every pod later.
    load_trust_bundle(paths.trust_bundle, clock)


def ensure_cluster(paths: StatePaths, cluster: str, trust_domain: str) -> None:
    clock = SystemClock()
    paths.issuer_cert(cluster).parent.mkdir(parents=True, exist_ok=True)
    if not paths.issuer_cert(cluster).exists():
        anchor = load_trust_anchor(paths.anchor_cert, paths.anchor_key, clock)
        issuer = create_issuer(anchor, cluster, clock, trust_domain=trust_domain)
        issuer.write(paths.issuer_cert(cluster), paths.issuer_key(cluster))
    if not paths.token_secret(cluster).exists():
        write_token_secret(paths.token_secret(cluster), new_token_secret())
