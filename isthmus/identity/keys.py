"""Naming key types in messages, and the one key type Isthmus accepts: ECDSA on P-256.

P-256 only, because every TLS stack in the path (Envoy's BoringSSL, Python's
OpenSSL) does it fast, and one key type means one code path to get right.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

ACCEPTED = "EC P-256 (ECDSA, secp256r1/prime256v1)"

_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def describe_key(key: PublicKeyTypes | PrivateKeyTypes) -> str:
    """A short human name for a key's type and size, e.g. 'RSA 2048-bit' or 'EC P-384'."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}-bit"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey | ed448.Ed448PrivateKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey | dsa.DSAPrivateKey):
        return f"DSA {key.key_size}-bit"
    if isinstance(key, x25519.X25519PublicKey | x25519.X25519PrivateKey):
        return "X25519"
    if isinstance(key, x448.X448PublicKey | x448.X448PrivateKey):
        return "X448"
    return type(key).__name__


def is_p256(key: PublicKeyTypes | PrivateKeyTypes) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1
    )
