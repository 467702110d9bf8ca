"""The files through which the agent hands the workload's certificate and key and the mesh's
trust anchors to Envoy (file-based SDS; the sidecar config reads the two secret files by name).

Each secret file is a DiscoveryResponse holding one Secret, written as JSON (which is
YAML too, so the `.yaml` names Envoy goes by parse). Certificates are inline. The
private key is not: Envoy logs a secret file's whole content at debug level, so the
key lives in a file of its own, named after its content and never rewritten. Renaming
the new workload file into place then swaps certificate and key together: it is the
only file that changes what Envoy loads, and the key it names is already complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isthmus.model.mesh import (
    IDENTITY_DIR,
    TRUST_BUNDLE_SECRET,
    TRUST_BUNDLE_SECRET_FILE,
    WORKLOAD_SECRET,
    WORKLOAD_SECRET_FILE,
)

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
_PRIVATE_KEY = "PRIVATE KEY-----"
KEY_FILE_PREFIX = "workload-key-"


def render_sds_files(
    cert_chain_pem: str, key_pem: str, bundle_pem: str, identity_dir: str = IDENTITY_DIR
) -> dict[str, str]:
    """File name (inside `identity_dir`) -> content, in the order to write them.

    cert_chain_pem: the workload certificate first, then its issuer (the anchor may follow).
    key_pem: the workload's private key (PKCS#8 or SEC1 PEM).
    bundle_pem: every trust anchor a peer may chain to; old and new during anchor rotation.
    identity_dir: where the files will be; the workload file names its key file by
    absolute path, since Envoy would resolve a relative one against its own cwd.
    The bundle comes first so that, when both change, a peer's new certificate is
    already trusted by the time this workload presents its own new one; the key comes
    before the workload file that names it.
    Raises ValueError for input that is not PEM of the right kind, which Envoy would
    otherwise reject later, with the error only in its log.
    """
    _require(cert_chain_pem, _CERTIFICATE, "certificate chain", "a PEM certificate")
    _require(key_pem, _PRIVATE_KEY, "private key", "a PEM private key")
    _require(bundle_pem, _CERTIFICATE, "trust bundle", "at least one PEM certificate")
    key_file = f"{KEY_FILE_PREFIX}{hashlib.sha256(key_pem.encode()).hexdigest()[:16]}.pem"
    bundle = {"name": TRUST_BUNDLE_SECRET, "validation_context": {"trusted_ca": {"inline_string": bundle_pem}}}
    workload = {
        "name": WORKLOAD_SECRET,
        "tls_certificate": {
            "certificate_chain": {"inline_string": cert_chain_pem},
            "private_key": {"filename": f"{identity_dir.rstrip('/')}/{key_file}"},
        },
    }
    return {
        TRUST_BUNDLE_SECRET_FILE: _discovery_response(bundle),
        key_file: key_pem,
        WORKLOAD_SECRET_FILE: _discovery_response(workload),
    }


def write_sds_files(directory: Path, files: Mapping[str, str]) -> None:
    """Replace each file atomically, in order, then delete key files nothing names any more.

    Envoy reloads a secret only when a file is renamed into the directory it watches,
    so each file is written beside its target and renamed over it. Every file is
    readable by this user only: one holds the private key. An old key can go at once:
    Envoy read it when it loaded the workload file that named it, and the workload
    file in place now names the new one.
    """
    for name, content in files.items():
        tmp = directory / f".{name}.tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(directory / name)
    for old in directory.glob(f"{KEY_FILE_PREFIX}*.pem"):
        if old.name not in files:
            old.unlink()


def _discovery_response(secret: dict[str, Any]) -> str:
    return json.dumps({"resources": [{"@type": SECRET_TYPE, **secret}]}, indent=1) + "\n"


def _require(pem: str, marker: str, what: str, expected: str) -> None:
    # The message never quotes the input: it may be key material.
    if marker not in pem:
        raise ValueError(f"the {what} handed to Envoy must be {expected} (no {marker!r} line found)")
