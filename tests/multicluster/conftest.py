from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from isthmus.identity.anchors import create_trust_anchor
from isthmus.identity.clock import SystemClock


def _anchor_pem() -> str:
    return create_trust_anchor(SystemClock()).certificate.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="session")
def anchor_pem() -> str:
    return _anchor_pem()


@pytest.fixture(scope="session")
def other_anchor_pem() -> str:
    """Another mesh's anchor."""
    return _anchor_pem()
