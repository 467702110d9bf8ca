"""The multi-cluster gateway as manifests (pure): what `isthmus multicluster install` applies.

A Deployment of one replica whose pod runs only the proxy (the container just
holds the pod open, as Kubernetes' pause container does). Its annotation,
in GATEWAY_NAMESPACE, is what makes the platform give it a wan address and the
control plane give its proxy the gateway's config instead of a sidecar's.
"""

from __future__ import annotations

from isthmus.model.mesh import (
    ADMIN_PORT,
    GATEWAY_ANNOTATION,
    GATEWAY_NAMESPACE,
    GATEWAY_SERVICE_ACCOUNT,
    INBOUND_PORT,
)

GATEWAY_DEPLOYMENT = "isthmus-gateway"
GATEWAY_PORT = INBOUND_PORT
PROBE_PORT = ADMIN_PORT
PROBE_PATH = "/ready"


def gateway_manifests() -> str:
    """Namespace, service account and deployment of a cluster's gateway (the same for every cluster)."""
    labels = f"{{app: {GATEWAY_DEPLOYMENT}, isthmus.io/component: gateway}}"
    return f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {GATEWAY_NAMESPACE}
  labels: {{isthmus.io/component: multicluster}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {GATEWAY_SERVICE_ACCOUNT}, namespace: {GATEWAY_NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {GATEWAY_DEPLOYMENT}, namespace: {GATEWAY_NAMESPACE}, labels: {labels}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {GATEWAY_DEPLOYMENT}}}}}
  template:
    metadata:
      labels: {labels}
      annotations: {{{GATEWAY_ANNOTATION}: "true"}}
    spec:
      serviceAccountName: {GATEWAY_SERVICE_ACCOUNT}
      containers:
        - name: pause
          command: ["sleep", "infinity"]
"""
