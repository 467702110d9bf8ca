"""Observability: metrics collection and queries, dashboard. May import xds, identity, proxy and model."""
