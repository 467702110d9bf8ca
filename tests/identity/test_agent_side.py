"""The workload side stays light: the agent's client imports only the stdlib, its CSR maker only cryptography."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography import x509

from isthmus.identity.csr import build_csr, generate_key
from tests.identity.helpers import WEB


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_client_imports_no_cryptography_and_no_other_isthmus_module() -> None:
    loaded = _modules_after("import isthmus.identity.client")
    assert not {m for m in loaded if m.startswith("cryptography")}
    assert {m for m in loaded if m.startswith("isthmus")} == {"isthmus", "isthmus.identity", "isthmus.identity.client"}
    assert "asyncio" not in loaded


def test_the_csr_maker_imports_no_other_isthmus_module() -> None:
    loaded = _modules_after("import isthmus.identity.csr")
    assert {m for m in loaded if m.startswith("isthmus")} == {"isthmus", "isthmus.identity", "isthmus.identity.csr"}


def test_build_csr_asks_for_exactly_the_spiffe_id() -> None:
    key = generate_key()
    csr = x509.load_pem_x509_csr(build_csr(key, WEB.uri))
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [WEB.uri]
    assert len(list(san)) == 1
    with pytest.raises(ValueError, match="expected a spiffe:// URI"):
        build_csr(key, "https://web")
