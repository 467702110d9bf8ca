"""A link as the linking cluster stores it: one Secret, `link-<remote>` in isthmus-multicluster. Pure.

`isthmus multicluster link` prints it (with the Namespace it lives in) from what
the remote cluster issued; the linking cluster's control plane reads it back into
a `LinkConfig` for that link's service-mirror controller.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass
from typing import Any

from isthmus.model.manifests import dump_resource
from isthmus.model.mesh import GATEWAY_NAMESPACE, LINK_SECRET_PREFIX, LINK_SECRET_TYPE, MIRROR_CLUSTER_LABEL
from isthmus.model.resources import Namespace, ObjectMeta, Secret
from isthmus.multicluster.errors import BadLinkSecret
from isthmus.multicluster.mirrors import RemoteGateway

# Data keys of a link Secret, each required.
KEYS = (
    "cluster-name",
    "linking-cluster",
    "api-address",
    "api-identity",
    "ca-bundle",
    "credential",
    "gateway-address",
    "gateway-port",
    "gateway-probe-port",
    "gateway-identity",
)
COMPONENT_LABEL = ("isthmus.io/component", "multicluster")


@dataclass(frozen=True)
class LinkConfig:
    """Everything one link's controller needs to watch the remote cluster and reach its gateway."""

    cluster_name: str
    """The remote cluster: mirrors are named `<service>-<cluster_name>`."""
    linking_cluster: str
    """The cluster that holds the link (the credential was issued to it)."""
    api_host: str
    api_port: int
    api_identity: str
    """The SPIFFE ID the remote's link API must present."""
    ca_bundle: str
    """PEM anchors the remote's link API certificate chains to."""
    credential: str
    gateway: RemoteGateway
    probe_port: int

    @property
    def api_address(self) -> str:
        return f"{self.api_host}:{self.api_port}"

    def __repr__(self) -> str:  # never the credential, wherever a config ends up printed
        return f"LinkConfig({self.linking_cluster} -> {self.cluster_name} at {self.api_address})"


def secret_name(cluster_name: str) -> str:
    return f"{LINK_SECRET_PREFIX}{cluster_name}"


def link_secret(config: LinkConfig) -> Secret:
    values = {
        "cluster-name": config.cluster_name,
        "linking-cluster": config.linking_cluster,
        "api-address": config.api_address,
        "api-identity": config.api_identity,
        "ca-bundle": config.ca_bundle,
        "credential": config.credential,
        "gateway-address": config.gateway.ip,
        "gateway-port": str(config.gateway.port),
        "gateway-probe-port": str(config.probe_port),
        "gateway-identity": config.gateway.identity,
    }
    meta = ObjectMeta(
        secret_name(config.cluster_name),
        GATEWAY_NAMESPACE,
        labels=tuple(sorted([COMPONENT_LABEL, (MIRROR_CLUSTER_LABEL, config.cluster_name)])),
    )
    data = tuple(sorted((k, base64.b64encode(v.encode()).decode()) for k, v in values.items()))
    return Secret(meta, LINK_SECRET_TYPE, data)


def link_objects(config: LinkConfig) -> list[dict[str, Any]]:
    """The Namespace (as `multicluster install` makes it) and the Secret, as manifests to apply."""
    namespace = Namespace(ObjectMeta(GATEWAY_NAMESPACE, "", labels=(COMPONENT_LABEL,)))
    return [dump_resource(namespace), dump_resource(link_secret(config))]


def from_secret(secret: Secret) -> LinkConfig:
    """The link a Secret describes; BadLinkSecret naming what is wrong (never a value)."""
    about = f"secret {secret.meta.namespace}/{secret.meta.name}"
    fallback = secret.meta.name.removeprefix(LINK_SECRET_PREFIX)
    if secret.type != LINK_SECRET_TYPE:
        raise BadLinkSecret(fallback, f"{about} is of type {secret.type!r}, not {LINK_SECRET_TYPE}")
    values: dict[str, str] = {}
    for key in KEYS:
        raw = secret.value(key)
        if raw is None:
            raise BadLinkSecret(fallback, f"{about} lacks {key}; link again (isthmus multicluster link)")
        try:
            values[key] = raw.decode()
        except UnicodeDecodeError:
            raise BadLinkSecret(fallback, f"{about}: {key} is not UTF-8 text") from None
    cluster = values["cluster-name"]
    if secret.meta.name != secret_name(cluster):
        raise BadLinkSecret(cluster, f"{about} is for cluster {cluster}; it must be named {secret_name(cluster)}")
    host, port = _host_port(values["api-address"], cluster, about, "api-address")
    return LinkConfig(
        cluster_name=cluster,
        linking_cluster=values["linking-cluster"],
        api_host=host,
        api_port=port,
        api_identity=values["api-identity"],
        ca_bundle=values["ca-bundle"],
        credential=values["credential"],
        gateway=RemoteGateway(
            _ip(values["gateway-address"], cluster, about, "gateway-address"),
            _port(values["gateway-port"], cluster, about, "gateway-port"),
            values["gateway-identity"],
        ),
        probe_port=_port(values["gateway-probe-port"], cluster, about, "gateway-probe-port"),
    )


def _host_port(value: str, cluster: str, about: str, key: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon:
        raise BadLinkSecret(cluster, f"{about}: {key} must be ADDRESS:PORT")
    return _ip(host, cluster, about, key), _port(port, cluster, about, key)


def _ip(value: str, cluster: str, about: str, key: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip("[]")))
    except ValueError:
        raise BadLinkSecret(cluster, f"{about}: {key} is not an IP address") from None


def _port(value: str, cluster: str, about: str, key: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise BadLinkSecret(cluster, f"{about}: {key} is not a port number")
    return int(value)
