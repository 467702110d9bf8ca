"""One pod of the local platform: a network namespace with its app containers and (usually) a sidecar.

Start order is the sidecar first, then the apps once Envoy has its config, so an
app never opens a connection the mesh cannot carry yet. Stop order is the
reverse, after the pod has left every endpoint list.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from isthmus.identity.clock import SystemClock
from isthmus.identity.files import write_file
from isthmus.identity.tokens import load_token_secret, mint_pod_token
from isthmus.model.mesh import ADMIN_PORT, is_gateway, node_id
from isthmus.model.resources import Container, Pod, PodTemplate
from isthmus.platform.local import netns, wan
from isthmus.platform.local.netplan import ClusterNetwork, hosts_file, resolv_conf, veth_name
from isthmus.platform.local.paths import StatePaths
from isthmus.platform.local.service_proxy import hook_rules
from isthmus.platform.local.supervisor import Supervised
from isthmus.proxy.redirect import iptables_rules

log = logging.getLogger(__name__)

# Enter the pod's network, give the process its own mount and UTS namespaces so the
# pod's resolv.conf, hosts and hostname apply to it alone, then become the command.
_POD_SHELL = (
    'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && hostname "$3" && shift 3 && exec "$@"'
)
# Before that, in the pod's own mount namespace: hide the mesh's state directory (issuer and
# anchor keys, token secrets, other pods' tokens, the platform API) behind an empty tmpfs, and
# bind back only the directories the pod may see ($2, one per line). They are bound to a
# private staging tmpfs first, because once the tmpfs covers $1 they cannot be reached.
_HIDE_HOME = """set -e
home=$1; visible=$2; shift 2
stage=/run/isthmus-pod-stage
mkdir -p "$stage"
mount -t tmpfs -o size=64k,mode=0700 isthmus-stage "$stage"
printf '%s\\n' "$visible" | { i=0; while IFS= read -r p; do
  mkdir -p "$p" "$stage/$i"; mount --bind "$p" "$stage/$i"; i=$((i+1)); done; }
mount -t tmpfs -o size=64k,mode=0755 isthmus-home "$home"
printf '%s\\n' "$visible" | { i=0; while IFS= read -r p; do
  mkdir -p "$p"; mount --bind "$stage/$i" "$p"; i=$((i+1)); done; }
umount -l "$stage"
"""


@dataclass(frozen=True)
class HiddenHome:
    """The state directory a pod must not see, and the directories under it that it may."""

    home: Path
    visible: tuple[Path, ...]


SIDECAR_READY_TIMEOUT = 30.0
# Tokens are short-lived and re-minted well before they expire, as a kubelet does.
TOKEN_LIFETIME = timedelta(hours=2)
TOKEN_REFRESH = timedelta(minutes=30)


def pod_argv(
    netns_name: str, pod_dir: Path, hostname: str, command: list[str], hide: HiddenHome | None = None
) -> list[str]:
    """How to run `command` as a process of the pod; `hide` for the pod's own containers (not for
    `isthmus exec`, which is the user looking in)."""
    shell, hiding = _POD_SHELL, []
    if hide is not None:
        visible = "\n".join(str(p) for p in hide.visible)
        shell, hiding = _HIDE_HOME + _POD_SHELL, [str(hide.home), visible]
    return [
        "nsenter",
        f"--net={netns.netns_path(netns_name)}",
        "--",
        "unshare",
        "--mount",
        "--uts",
        "--",
        "sh",
        "-c",
        shell,
        "sh",
        *hiding,
        str(pod_dir / "resolv.conf"),
        str(pod_dir / "hosts"),
        hostname,
        *command,
    ]


@dataclass(frozen=True)
class PodPlan:
    """What the reconciler decided this pod is."""

    name: str
    namespace: str
    deployment: str
    template: PodTemplate
    template_hash: str
    slot: int
    ip: str


class PodRuntime:
    def __init__(
        self,
        plan: PodPlan,
        net: ClusterNetwork,
        paths: StatePaths,
        on_change: Callable[[], None],
        trust_domain: str,
    ) -> None:
        self.plan = plan
        self.trust_domain = trust_domain
        self.net = net
        self.paths = paths
        self.dir = paths.pod_dir(net.name, plan.namespace, plan.name)
        self.netns = f"{net.netns}-p{plan.slot}"
        self.sidecar: Supervised | None = None
        self.containers: list[Supervised] = []
        self.phase = "Pending"
        self.service_rules = ""  # what this pod's service VIP chain holds, when it has no sidecar
        self.ready = False
        self.terminating = False
        self._on_change = on_change
        self._probe_task: asyncio.Task[None] | None = None

    @property
    def injected(self) -> bool:
        return dict(self.plan.template.annotations).get("isthmus.io/inject", "enabled") != "disabled"

    @property
    def gateway(self) -> bool:
        """The cluster's multi-cluster gateway: its proxy also gets a leg on the wan."""
        return self.injected and is_gateway(self.plan.namespace, self.plan.template.annotations)

    def model(self) -> Pod:
        ports = tuple(p for c in self.plan.template.containers for p in c.ports)
        return Pod(
            name=self.plan.name,
            namespace=self.plan.namespace,
            cluster=self.net.name,
            ip=self.plan.ip,
            labels=self.plan.template.labels,
            annotations=self.plan.template.annotations,
            service_account=self.plan.template.service_account,
            deployment=self.plan.deployment,
            container_ports=ports,
            ready=self.ready and not self.terminating,
        )

    def _env(self, extra: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.dir),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "POD_NAME": self.plan.name,
            "POD_NAMESPACE": self.plan.namespace,
            "POD_IP": self.plan.ip,
            "ISTHMUS_CLUSTER": self.net.name,
            "ISTHMUS_SERVICE_ACCOUNT": self.plan.template.service_account,
            "ISTHMUS_DEPLOYMENT": self.plan.deployment,
            # A cluster of the local platform is one node: its network namespace and bridge.
            "ISTHMUS_NODE": f"{self.net.name}-node",
        }
        env.update(extra)
        return env

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "resolv.conf").write_text(resolv_conf(self.net, self.plan.namespace))
        (self.dir / "hosts").write_text(hosts_file(self.plan.name, self.plan.ip))
        await netns.create_pod(self.net, self.netns, veth_name(self.net.index, self.plan.slot), self.plan.ip)
        if self.gateway:
            # No redirect: the gateway's Envoy is the pod's only traffic, on its own listeners.
            await wan.connect_gateway(self.net, self.netns)
            await self._start_sidecar()
        elif self.injected:
            await netns.install_iptables(self.netns, iptables_rules(self.net.node_ip))
            await self._start_sidecar()
        else:
            await netns.install_iptables(self.netns, hook_rules())
        for c in self.plan.template.containers:
            self._start_container(c)
        self.phase = "Running"
        self._probe_task = asyncio.create_task(self._probe_loop(), name=f"probe {self.plan.name}")

    def write_token(self) -> None:
        """The pod's proof of its service account for the identity service, like a projected token."""
        secret = load_token_secret(self.paths.token_secret(self.net.name))
        token = mint_pod_token(
            secret,
            self.net.name,
            self.plan.namespace,
            self.plan.template.service_account,
            self.plan.name,
            SystemClock(),
            TOKEN_LIFETIME,
        )
        write_file(self.dir / "token", token.encode(), private=True, overwrite=True)

    async def _start_sidecar(self) -> None:
        self.write_token()
        cmd = [
            sys.executable,
            "-m",
            "isthmus.proxy.agent",
            "--node-id",
            node_id(self.net.name, self.plan.namespace, self.plan.name),
            "--pod-ip",
            self.plan.ip,
            "--ads-socket",
            str(self.paths.ads_socket(self.net.name)),
            "--bootstrap",
            str(self.dir / "envoy.json"),
            "--identity-socket",
            str(self.paths.identity_socket(self.net.name)),
            "--token-file",
            str(self.dir / "token"),
            "--trust-bundle",
            str(self.paths.trust_bundle),
            "--recertify-file",
            str(self.paths.recertify_file(self.net.name)),
            "--trust-domain",
            self.trust_domain,
            "--service-account",
            self.plan.template.service_account,
            *(["--gateway-address", self.net.gateway_wan_ip] if self.gateway else []),
        ]
        self.sidecar = Supervised(
            f"{self.plan.name}/proxy",
            pod_argv(self.netns, self.dir, self.plan.name, cmd, self._hidden_home()),
            # The service its spans are reported under (OpenTelemetry's resource), for the sidecar alone:
            # an app's own tracing must not pick it up.
            self._env((("OTEL_RESOURCE_ATTRIBUTES", f"service.name={self.plan.deployment}.{self.plan.namespace}"),)),
            self.dir,
            self.paths.proxy_log(self.net.name, self.plan.namespace, self.plan.name),
            self._on_change,
        )
        self.sidecar.start()
        deadline = asyncio.get_running_loop().time() + SIDECAR_READY_TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            status, _ = await netns.http_get(self.net.netns, self.plan.ip, ADMIN_PORT, "/ready")
            if status == 200:
                return
            await asyncio.sleep(0.05)
        log.warning(
            "pod %s: sidecar not ready after %.0fs; starting the app anyway",
            self.plan.name,
            SIDECAR_READY_TIMEOUT,
        )

    def _hidden_home(self) -> HiddenHome:
        # The pod's own directory holds its token, as a Kubernetes pod sees its service account's.
        visible = (self.dir, self.paths.public, self.paths.pod_sockets(self.net.name))
        return HiddenHome(self.paths.home, visible)

    def _start_container(self, c: Container) -> None:
        s = Supervised(
            f"{self.plan.name}/{c.name}",
            pod_argv(self.netns, self.dir, self.plan.name, [*c.command, *c.args], self._hidden_home()),
            self._env(c.env),
            self.dir,
            self.paths.app_log(self.net.name, self.plan.namespace, self.plan.name),
            self._on_change,
        )
        s.start()
        self.containers.append(s)

    async def _ports_open(self) -> bool:
        ports = [p.container_port for c in self.plan.template.containers for p in c.ports if p.protocol == "TCP"]
        if not all(c.running for c in self.containers):
            return False
        for port in ports:
            if not await netns.tcp_probe(self.net.netns, self.plan.ip, port):
                return False
        return True

    async def _probe_loop(self) -> None:
        ever_ready = False
        token_written = time.monotonic()
        while True:
            if self.injected and time.monotonic() - token_written > TOKEN_REFRESH.total_seconds():
                self.write_token()
                token_written = time.monotonic()
            ready = await self._ports_open()
            if ready != self.ready:
                self.ready = ready
                self._on_change()
            ever_ready = ever_ready or ready
            # Every 50 ms until the pod is first ready (a new service is routable as soon as its
            # app listens; a back-off here once cost up to 0.7 s), then at a kubelet-like pace.
            await asyncio.sleep(1.0 if ready else (0.5 if ever_ready else 0.05))

    async def stop(self, drain: float) -> None:
        """Leave the endpoint lists, let in-flight requests finish, then stop the apps and the sidecar."""
        self.terminating = True
        self.phase = "Terminating"
        self._on_change()
        if self._probe_task:
            self._probe_task.cancel()
        if drain > 0 and self.ready:
            await asyncio.sleep(drain)
        await asyncio.gather(*(c.stop() for c in self.containers))
        if self.sidecar:
            await self.sidecar.stop(grace=2.0)
        await netns.delete_netns(self.netns)

    @property
    def restarts(self) -> int:
        return sum(c.restarts for c in self.containers)
