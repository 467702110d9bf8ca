"""Where a local mesh keeps its state, sockets and logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    """$ISTHMUS_HOME, else the user's XDG state dir (~/.local/state/isthmus)."""
    if env := os.environ.get("ISTHMUS_HOME"):
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return (Path(base) / "isthmus").resolve()


@dataclass(frozen=True)
class StatePaths:
    home: Path

    @property
    def db(self) -> Path:
        return self.home / "state.db"

    @property
    def api_socket(self) -> Path:
        return self.home / "run" / "api.sock"

    @property
    def pidfile(self) -> Path:
        """Host pids of the namespace's init and of the platform daemon."""
        return self.home / "run" / "daemon.pid"

    @property
    def daemon_log(self) -> Path:
        return self.home / "logs" / "daemon.log"

    def pod_sockets(self, cluster: str) -> Path:
        """The cluster's sockets its pods may use (ADS, identity); a directory, so that a restarted
        control plane's new sockets show through the bind mount a pod sees it by."""
        return self.home / "run" / cluster

    def ads_socket(self, cluster: str) -> Path:
        return self.pod_sockets(cluster) / "ads.sock"

    def controlplane_socket(self, cluster: str) -> Path:
        return self.home / "run" / f"cp-{cluster}.sock"

    @property
    def anchor_cert(self) -> Path:
        return self.home / "identity" / "trust-anchor.crt"

    @property
    def anchor_key(self) -> Path:
        return self.home / "identity" / "trust-anchor.key"

    @property
    def trust_bundle(self) -> Path:
        """Every anchor peers may chain to (more than one during anchor rotation)."""
        return self.public / "trust-bundle.pem"

    @property
    def legacy_trust_bundle(self) -> Path:
        """Where meshes made before the public directory kept the bundle."""
        return self.home / "identity" / "trust-bundle.pem"

    @property
    def public(self) -> Path:
        """What every pod may read of the mesh's state: the trust bundle and the rotation signals.
        Everything else of the state directory (keys, token secrets, other pods) is hidden from pods."""
        return self.home / "public"

    @property
    def next_anchor_cert(self) -> Path:
        """The new anchor while an anchor rotation is in progress (absent otherwise)."""
        return self.home / "identity" / "rotation" / "trust-anchor.crt"

    @property
    def next_anchor_key(self) -> Path:
        return self.home / "identity" / "rotation" / "trust-anchor.key"

    @property
    def retired_anchors(self) -> Path:
        """Anchors rotated out, kept as backups: trust-anchor-<when>.crt and .key."""
        return self.home / "identity" / "retired"

    def issuer_cert(self, cluster: str) -> Path:
        return self.home / "clusters" / cluster / "identity" / "issuer.crt"

    def issuer_key(self, cluster: str) -> Path:
        return self.home / "clusters" / cluster / "identity" / "issuer.key"

    def retired_issuers(self, cluster: str) -> Path:
        """Issuers rotated out of the cluster, kept as backups: issuer-<when>.crt and .key."""
        return self.home / "clusters" / cluster / "identity" / "retired"

    def recertify_file(self, cluster: str) -> Path:
        """A generation number the cluster's sidecar agents watch: when it changes, each gets a new certificate."""
        return self.public / f"recertify-{cluster}"

    def token_secret(self, cluster: str) -> Path:
        return self.home / "clusters" / cluster / "identity" / "token.key"

    def link_key(self, cluster: str) -> Path:
        """The key the cluster MACs the link credentials it issues with (`isthmus multicluster link`)."""
        return self.home / "clusters" / cluster / "identity" / "link.key"

    def link_credentials(self, cluster: str) -> Path:
        """The link credentials the cluster has issued and not revoked: whom its link API answers."""
        return self.home / "clusters" / cluster / "links.json"

    def identity_socket(self, cluster: str) -> Path:
        return self.pod_sockets(cluster) / "identity.sock"

    def pod_dir(self, cluster: str, namespace: str, pod: str) -> Path:
        return self.home / "pods" / cluster / namespace / pod

    def app_log(self, cluster: str, namespace: str, pod: str) -> Path:
        return self.home / "logs" / cluster / namespace / f"{pod}.log"

    def proxy_log(self, cluster: str, namespace: str, pod: str) -> Path:
        return self.home / "logs" / cluster / namespace / f"{pod}.proxy.log"

    def controller_log(self, cluster: str) -> Path:
        return self.home / "logs" / cluster / "controller.log"
