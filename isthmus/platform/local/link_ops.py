"""The platform API's link operations: issue and revoke link credentials, list a cluster's links.

`isthmus multicluster link/unlink/check` call these through the daemon's socket
(an administrator's path, unlike the read-only link API on the wan).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from isthmus.identity.errors import IdentityError
from isthmus.model.errors import IsthmusError
from isthmus.model.manifests import dump_resource
from isthmus.model.mesh import GATEWAY_NAMESPACE, LINK_SECRET_TYPE
from isthmus.model.resources import Secret
from isthmus.model.validate import dns1123_label
from isthmus.platform.local import link_exports
from isthmus.platform.local.paths import StatePaths

if TYPE_CHECKING:
    from isthmus.platform.local.cluster import LocalCluster
    from isthmus.platform.local.link_api import LinkApi


class LinkOpError(IsthmusError):
    """A link operation the daemon refuses; the message says why."""


def _running(cluster: LocalCluster, api: LinkApi | None) -> LinkApi:
    if api is None:
        raise LinkOpError(f"the link API of cluster {cluster.name} is not running (see the daemon's log)")
    return api


def issue(cluster: LocalCluster, api: LinkApi | None, paths: StatePaths, linking: object) -> dict[str, Any]:
    api = _running(cluster, api)
    if not isinstance(linking, str) or dns1123_label(linking) is not None:
        raise LinkOpError(f"the linking cluster's name {linking!r} is not a cluster name")
    if linking == cluster.name:
        raise LinkOpError(f"cluster {cluster.name} cannot link to itself")
    try:
        credential = api.issue(linking)
        ca_bundle = paths.trust_bundle.read_text()
    except (IdentityError, OSError) as e:
        raise LinkOpError(f"cannot issue a link credential for cluster {cluster.name}: {e}") from e
    return {
        "cluster": cluster.name,
        "linking_cluster": linking,
        "credential": credential,
        "api_address": api.address,
        "api_identity": api.identity.uri,
        "ca_bundle": ca_bundle,
        "gateway": link_exports.gateway(cluster.state(), cluster.net.gateway_wan_ip),
    }


def revoke(cluster: LocalCluster, api: LinkApi | None, credential_id: object) -> dict[str, Any]:
    api = _running(cluster, api)
    if not isinstance(credential_id, str) or not credential_id:
        raise LinkOpError("name the credential to revoke by its id")
    try:
        return {"revoked": api.revoke(credential_id)}
    except IdentityError as e:
        raise LinkOpError(str(e)) from e


def credentials(cluster: LocalCluster, api: LinkApi | None) -> dict[str, Any]:
    api = _running(cluster, api)
    try:
        return {"credentials": [asdict(i) for i in api.credentials.issued()], "api_address": api.address}
    except IdentityError as e:
        raise LinkOpError(str(e)) from e


def link_secrets(cluster: LocalCluster) -> list[dict[str, Any]]:
    """The cluster's link Secrets as manifests, data included: for its own service mirrors only."""
    return [
        dump_resource(r)
        for r in sorted(cluster.objects.values(), key=lambda r: r.meta.name)
        if isinstance(r, Secret) and r.meta.namespace == GATEWAY_NAMESPACE and r.type == LINK_SECRET_TYPE
    ]
