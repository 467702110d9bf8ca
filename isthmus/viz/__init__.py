"""Observability: what the sidecars saw, read from their Envoy admin APIs and turned into edges and metrics.

Above the platforms (it reaches sidecars the way the platform runs them), below
the CLI, the dashboard and the control plane (which runs its traffic `collector`).
`admin` is the I/O edge (a Protocol, with a fake), as is `collector.Fleet`;
`envoy_admin`, `edges`, `latency`, `traffic`, `history`, `golden`, `prometheus_text`
and `controlplane_metrics` are pure.
May import platform, proxy, xds, identity and model.
"""
