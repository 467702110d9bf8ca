"""Platforms: where workloads run (local namespaces or Kubernetes), feeding the model.

May import xds, identity, proxy and model.
"""
