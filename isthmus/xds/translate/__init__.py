"""Translation: model -> the Envoy resources of one proxy. Pure functions, no I/O.

Part of the xds stage; may import isthmus.model and isthmus.xds.snapshot only.
Resource names are in `naming`, so the ADS server, viz and tests agree on them.
"""

from isthmus.xds.translate.sidecar import build_sidecar, build_sidecars

__all__ = ["build_sidecar", "build_sidecars"]
