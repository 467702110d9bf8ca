"""The Kubernetes platform adapter (not yet built)."""
