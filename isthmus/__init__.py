"""Isthmus: a multi-cluster service mesh with an Envoy data plane and a Python control plane."""

__version__ = "0.1.0"
