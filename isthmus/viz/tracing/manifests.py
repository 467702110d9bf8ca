"""The `tracing` add-on as manifests (pure): what `isthmus addons enable tracing` applies to a cluster.

One collector pod (`python -m isthmus.viz.tracing`) without a sidecar, so that its own
traffic is never traced (no loop), behind the Service that makes the cluster trace:
in TRACE_COLLECTOR_NAMESPACE, labelled TRACE_COLLECTOR_LABEL, with an `otlp-grpc` port
(`isthmus.model.resources.trace_collector`). It answers queries on a Unix socket in
its own pod directory (its working directory), where the CLI finds it.
"""

from __future__ import annotations

from isthmus.model.resources import (
    ANNOTATION_INJECT,
    TRACE_COLLECTOR_LABEL,
    TRACE_COLLECTOR_NAMESPACE,
    TRACE_COLLECTOR_PORT_NAME,
)
from isthmus.viz.tracing.store import DEFAULT_MAX_SPANS

COLLECTOR = "isthmus-tracing"
OTLP_GRPC_PORT = 4317
QUERY_SOCKET = "query.sock"
ADDON_LABEL = "isthmus.io/addon"


def tracing_manifests(max_spans: int = DEFAULT_MAX_SPANS) -> str:
    """Namespace, service account, collector deployment and its Service (the same for every cluster)."""
    labels = f"{{app: {COLLECTOR}, {ADDON_LABEL}: tracing}}"
    return f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {TRACE_COLLECTOR_NAMESPACE}
  labels: {{isthmus.io/component: system}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {COLLECTOR}, namespace: {TRACE_COLLECTOR_NAMESPACE}, labels: {{{ADDON_LABEL}: tracing}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {COLLECTOR}, namespace: {TRACE_COLLECTOR_NAMESPACE}, labels: {labels}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {COLLECTOR}}}}}
  template:
    metadata:
      labels: {labels}
      annotations: {{{ANNOTATION_INJECT}: disabled}}
    spec:
      serviceAccountName: {COLLECTOR}
      containers:
        - name: collector
          command: ["python", "-m", "isthmus.viz.tracing", "--otlp-port", "{OTLP_GRPC_PORT}",
                    "--query-socket", "{QUERY_SOCKET}", "--max-spans", "{max_spans}"]
          ports: [{{containerPort: {OTLP_GRPC_PORT}, name: {TRACE_COLLECTOR_PORT_NAME}}}]
---
apiVersion: v1
kind: Service
metadata:
  name: {COLLECTOR}
  namespace: {TRACE_COLLECTOR_NAMESPACE}
  labels: {{{ADDON_LABEL}: tracing, {TRACE_COLLECTOR_LABEL}: "true"}}
spec:
  selector: {{app: {COLLECTOR}}}
  ports: [{{name: {TRACE_COLLECTOR_PORT_NAME}, port: {OTLP_GRPC_PORT}, targetPort: {TRACE_COLLECTOR_PORT_NAME}}}]
"""
