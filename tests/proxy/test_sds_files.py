"""The SDS files the agent hands to Envoy: their exact shape, how they are replaced, and that Envoy loads them."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from isthmus.model.mesh import TRUST_BUNDLE_SECRET, TRUST_BUNDLE_SECRET_FILE, WORKLOAD_SECRET, WORKLOAD_SECRET_FILE
from isthmus.proxy.sds_files import KEY_FILE_PREFIX, SECRET_TYPE, render_sds_files, write_sds_files
from tests.xds.certs import TestMesh, Workload
from tests.xds.envoy_config import find_envoy

MESH = TestMesh()
WORKLOAD = MESH.workload("default", "web")
BROKEN_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"


def rendered(directory: str = "/run/isthmus-identity", w: Workload = WORKLOAD) -> dict[str, str]:
    return render_sds_files(w.chain_pem, w.key_pem, MESH.bundle_pem, directory)


def _key_file(files: dict[str, str]) -> str:
    (name,) = [n for n in files if n.startswith(KEY_FILE_PREFIX)]
    return name


def test_bundle_first_and_the_key_before_the_workload_file_that_names_it() -> None:
    files = rendered()
    assert list(files) == [TRUST_BUNDLE_SECRET_FILE, _key_file(files), WORKLOAD_SECRET_FILE]
    assert files[_key_file(files)] == WORKLOAD.key_pem


def test_key_file_is_named_after_its_content() -> None:
    # Never rewritten in place: a new key is a new file, so the workload file's rename swaps both.
    other = MESH.workload("default", "web")
    assert _key_file(rendered()) == _key_file(rendered())
    assert _key_file(rendered()) != _key_file(rendered(w=other))


def test_secret_files_are_discovery_responses_with_one_secret_each() -> None:
    files = rendered()
    # Envoy parses by extension (.yaml); JSON is YAML, and must mean the same.
    docs = {name: json.loads(files[name]) for name in (TRUST_BUNDLE_SECRET_FILE, WORKLOAD_SECRET_FILE)}
    assert docs == {name: yaml.safe_load(files[name]) for name in docs}
    (bundle,) = docs[TRUST_BUNDLE_SECRET_FILE]["resources"]
    assert bundle == {
        "@type": SECRET_TYPE,
        "name": TRUST_BUNDLE_SECRET,
        "validation_context": {"trusted_ca": {"inline_string": MESH.bundle_pem}},
    }
    (workload,) = docs[WORKLOAD_SECRET_FILE]["resources"]
    assert workload == {
        "@type": SECRET_TYPE,
        "name": WORKLOAD_SECRET,
        "tls_certificate": {
            "certificate_chain": {"inline_string": WORKLOAD.chain_pem},
            # By name: Envoy logs a secret file's content at debug level, and the key must stay in the pod.
            "private_key": {"filename": f"/run/isthmus-identity/{_key_file(files)}"},
        },
    }
    assert "PRIVATE KEY" not in files[WORKLOAD_SECRET_FILE]


@pytest.mark.parametrize(
    ("field", "message"),
    [
        pytest.param("cert_chain_pem", "certificate chain", id="chain-not-pem"),
        pytest.param("key_pem", "private key", id="key-not-pem"),
        pytest.param("bundle_pem", "trust bundle", id="bundle-empty"),
    ],
)
def test_input_that_is_not_pem_is_refused_without_echoing_it(field: str, message: str) -> None:
    args = {"cert_chain_pem": WORKLOAD.chain_pem, "key_pem": WORKLOAD.key_pem, "bundle_pem": MESH.bundle_pem}
    args[field] = "secret-material-do-not-log"
    with pytest.raises(ValueError, match=message) as err:
        render_sds_files(**args)
    assert "secret-material" not in str(err.value)


def test_files_are_replaced_by_rename_private_and_old_keys_go(tmp_path: Path) -> None:
    first = rendered(str(tmp_path))
    write_sds_files(tmp_path, first)
    before = (tmp_path / WORKLOAD_SECRET_FILE).stat().st_ino
    renewed = rendered(str(tmp_path), MESH.workload("default", "web"))
    write_sds_files(tmp_path, renewed)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(renewed)
    workload = tmp_path / WORKLOAD_SECRET_FILE
    # A new inode: the old file was renamed over, never rewritten in place (Envoy would not notice).
    assert workload.stat().st_ino != before
    assert workload.read_text() == renewed[WORKLOAD_SECRET_FILE]
    assert all(stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600 for name in renewed)


def _bootstrap_using(directory: Path) -> dict[str, Any]:
    """A cluster whose TLS context reads both secrets from the files, as the sidecar config does.

    A cluster, not a listener: validate mode loads a cluster's secrets, not a listener's.
    """

    def source(file: str) -> dict[str, Any]:
        return {"path_config_source": {"path": str(directory / file), "watched_directory": {"path": str(directory)}}}

    tls = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [
                {"name": WORKLOAD_SECRET, "sds_config": source(WORKLOAD_SECRET_FILE)}
            ],
            "validation_context_sds_secret_config": {
                "name": TRUST_BUNDLE_SECRET,
                "sds_config": source(TRUST_BUNDLE_SECRET_FILE),
            },
        },
    }
    return {
        "node": {"id": "west/default/web-1", "cluster": "web"},  # SDS needs both, as the real bootstrap sets
        "static_resources": {
            "clusters": [
                {
                    "name": "c",
                    "connect_timeout": "1s",
                    "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
                }
            ]
        },
    }


def _without_key(identity: Path) -> None:
    for key in identity.glob(f"{KEY_FILE_PREFIX}*"):
        key.unlink()


@pytest.mark.envoy
@pytest.mark.skipif(find_envoy() is None, reason="no envoy binary")
@pytest.mark.parametrize(
    ("chain", "breakage", "complaint"),
    [
        pytest.param(WORKLOAD.chain_pem, None, None, id="as-rendered"),
        pytest.param(BROKEN_PEM, None, "failed to load certificate chain", id="broken-certificate"),
        pytest.param(WORKLOAD.chain_pem, _without_key, "invalid path", id="key-file-missing"),
    ],
)
def test_envoy_loads_the_rendered_files(
    tmp_path: Path, chain: str, breakage: Callable[[Path], None] | None, complaint: str | None
) -> None:
    # Validate mode loads a cluster's SDS files: a secret it cannot use shows as a rejected
    # update in its log (the exit code stays 0, as it would keep the last good secret).
    envoy = find_envoy()
    assert envoy is not None
    identity = tmp_path / "identity"
    identity.mkdir()
    write_sds_files(identity, render_sds_files(chain, WORKLOAD.key_pem, MESH.bundle_pem, str(identity)))
    if breakage is not None:
        breakage(identity)
    config = tmp_path / "envoy.json"
    config.write_text(json.dumps(_bootstrap_using(identity)))
    proc = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    if complaint is None:
        assert "rejected" not in output, output
    else:
        assert "update rejected" in output and complaint in output.lower(), output
