"""Fixed facts of the data plane that the platform, the agent and the translation stage share."""

OUTBOUND_PORT = 4140
INBOUND_PORT = 4143
ADMIN_PORT = 4191

# Envoy marks its own upstream sockets so the pod's redirect rules let them through
# (there is no second uid to match on inside the local platform's user namespace).
PROXY_MARK = 0x1E5

# Set by the outbound sidecar on requests it upgrades to HTTP/2 towards a peer sidecar,
# so the inbound sidecar can talk to the app in the protocol the client used.
ORIG_PROTO_HEADER = "x-isthmus-orig-proto"

XDS_CLUSTER = "isthmus-xds"


def node_id(cluster: str, namespace: str, pod: str) -> str:
    return f"{cluster}/{namespace}/{pod}"


def parse_node_id(value: str) -> tuple[str, str, str]:
    """Inverse of `node_id`; raises ValueError on anything else."""
    parts = value.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"node id {value!r} is not <cluster>/<namespace>/<pod>")
    return parts[0], parts[1], parts[2]


# Where a sidecar finds its identity, inside its own private mount (a tmpfs only the
# sidecar's processes see): the key never leaves the pod. Envoy watches the directory
# and picks up renewed certificates without a restart (file-based SDS).
IDENTITY_DIR = "/run/isthmus-identity"
WORKLOAD_SECRET_FILE = "workload.yaml"
TRUST_BUNDLE_SECRET_FILE = "trust-bundle.yaml"
# Names of the SDS secrets inside those files; the agent writes them, the sidecar config reads them.
WORKLOAD_SECRET = "workload"
TRUST_BUNDLE_SECRET = "trust-bundle"
# Set by the inbound sidecar to the caller's verified SPIFFE ID, removed from anything else.
CLIENT_ID_HEADER = "x-isthmus-client-id"
# ALPN that tells the inbound sidecar what a mesh TLS connection carries.
ALPN_HTTP = "h2"
ALPN_TCP = "isthmus-tcp"


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


# Multi-cluster. The gateway is the one pod a cluster puts on the wan: a pod in
# GATEWAY_NAMESPACE carrying GATEWAY_ANNOTATION "true" (both, so a user's pod elsewhere
# never becomes one). A Service carrying EXPORTED_LABEL "true" is reachable through it.
GATEWAY_NAMESPACE = "isthmus-multicluster"
GATEWAY_SERVICE_ACCOUNT = "isthmus-gateway"
GATEWAY_ANNOTATION = "isthmus.io/gateway"
EXPORTED_LABEL = "mirror.isthmus.io/exported"


def is_gateway(namespace: str, annotations: tuple[tuple[str, str], ...]) -> bool:
    return namespace == GATEWAY_NAMESPACE and dict(annotations).get(GATEWAY_ANNOTATION) == "true"


# A mirror is an ordinary Service `<name>-<cluster>` in the caller's cluster that stands
# for the exported Service `<name>` of the same namespace in cluster `<cluster>`. It has
# no selector; its annotations say how to reach the original through that cluster's
# gateway. A port listed in the Service's ANNOTATION_OPAQUE_PORTS
# ("config.isthmus.io/opaque-ports", by service port) is carried as opaque TCP.
MIRROR_LABEL = "mirror.isthmus.io/mirrored-service"
MIRROR_CLUSTER_LABEL = "mirror.isthmus.io/cluster-name"
# "ip:port" of the remote gateway's mTLS listener on the wan.
MIRROR_GATEWAY_ANNOTATION = "mirror.isthmus.io/remote-gateway"
# The SPIFFE ID the remote gateway must present.
MIRROR_GATEWAY_IDENTITY_ANNOTATION = "mirror.isthmus.io/remote-gateway-identity"
# Comma-separated SPIFFE IDs, any of which the remote backend's sidecar may present.
MIRROR_IDENTITIES_ANNOTATION = "mirror.isthmus.io/remote-identities"
# Set to "false" by the link's controller while the remote gateway fails its probes: the
# caller's sidecar then gives the mirror no endpoints, so calls fail at once (503) instead
# of waiting on a dead gateway. Absent means alive.
MIRROR_GATEWAY_ALIVE_ANNOTATION = "mirror.isthmus.io/gateway-alive"

# A link: a Secret of LINK_SECRET_TYPE in GATEWAY_NAMESPACE of the linking cluster, named
# `link-<remote cluster>`, holding what its service-mirror controller needs to watch the remote.
LINK_SECRET_TYPE = "mirror.isthmus.io/link"
LINK_SECRET_PREFIX = "link-"
