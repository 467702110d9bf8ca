"""Observability: what the sidecars saw, read from their Envoy admin APIs and turned into edges and metrics.

Sits beside the control plane, above the platforms (it reaches sidecars the way
the platform runs them) and below the CLI and the dashboard. `admin` is the I/O
edge (a Protocol, with a fake); `envoy_admin` and `edges` are pure.
May import platform, proxy, xds, identity and model.
"""
