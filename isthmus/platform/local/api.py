"""The platform API's operations: what `isthmus` commands and the control plane ask the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from isthmus.model.codec import encode
from isthmus.model.errors import IsthmusError
from isthmus.model.manifests import dump_resource
from isthmus.model.resources import Deployment, Secret
from isthmus.platform.local import link_ops, rpc
from isthmus.platform.local.apply import ApplyError, plan_apply, plan_delete
from isthmus.platform.local.cluster import LocalCluster
from isthmus.platform.local.link_writes import plan_link_apply, plan_link_delete
from isthmus.platform.local.settings import MeshSettings, SettingsError

if TYPE_CHECKING:
    from isthmus.platform.local.daemon import Daemon


class ApiError(Exception):
    pass


class Api:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    async def handle(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> dict[str, Any] | None:
        op = req.get("op")
        handler = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            return {"ok": False, "error": f"unknown operation {op!r}"}
        try:
            if op == "watch":
                await self.op_watch(req, writer)
                return None
            result: dict[str, Any] = await handler(req)
            return {"ok": True, **result}
        except (ApiError, ApplyError, IsthmusError) as e:
            return {"ok": False, "error": str(e)}

    def _cluster(self, req: dict[str, Any]) -> LocalCluster:
        name = req.get("cluster")
        if not name:
            if len(self.d.clusters) == 1:
                return next(iter(self.d.clusters.values()))
            raise ApiError(f"more than one cluster ({', '.join(self.d.clusters)}): name one with --cluster")
        if name not in self.d.clusters:
            raise ApiError(f"no cluster named {name!r} (clusters: {', '.join(self.d.clusters) or 'none'})")
        return self.d.clusters[name]

    async def op_status(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "ready": self.d.ready,
            "pid": os.getpid(),
            "clusters": [
                {
                    "name": c.name,
                    "pod_cidr": str(c.net.pod_cidr),
                    "service_cidr": str(c.net.service_cidr),
                    "node_ip": c.net.node_ip,
                    "wan_ip": c.net.wan_ip,
                    "gateway_wan_ip": c.net.gateway_wan_ip,
                    "netns": c.net.netns,
                    "pods": len(c.pods),
                    "controlplane": bool(c.controlplane and c.controlplane.running),
                    "ads_socket": str(self.d.paths.ads_socket(c.name)),
                }
                for c in self.d.clusters.values()
            ],
        }

    async def op_up(self, req: dict[str, Any]) -> dict[str, Any]:
        names = [str(n) for n in req.get("clusters", [])]
        changed = False
        if isinstance(req.get("settings"), str):
            try:
                changed = self.d.change_settings(MeshSettings.from_json(req["settings"]))
            except (SettingsError, ValueError, KeyError) as e:
                raise ApiError(str(e)) from e
        return {"created": await self.d.ensure_clusters(names), "settings_changed": changed}

    async def op_down(self, req: dict[str, Any]) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.d.shutdown()))
        return {}

    async def op_apply(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(req)
        if req.get("link"):  # a link's service mirror: its own mirrors only (link_writes)
            plan = plan_link_apply(cluster.objects, str(req["text"]), str(req.get("source", "-")), str(req["link"]))
        else:
            plan = plan_apply(cluster.objects, str(req["text"]), str(req.get("source", "-")), req.get("namespace"))
        await cluster.write(plan.put)
        return {"results": plan.messages}

    async def op_delete(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(req)
        if req.get("link"):
            plan = plan_link_delete(cluster.objects, str(req["text"]), str(req.get("source", "-")), str(req["link"]))
            await cluster.write((), plan.delete)
            return {"results": plan.messages}
        plan = plan_delete(
            cluster.objects,
            str(req["text"]),
            str(req.get("source", "-")),
            req.get("namespace"),
            bool(req.get("ignore_not_found")),
        )
        await cluster.write((), plan.delete)
        return {"results": plan.messages}

    async def op_scale(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(req)
        ns, name, replicas = str(req.get("namespace") or "default"), str(req["name"]), req["replicas"]
        if not isinstance(replicas, int) or not 0 <= replicas <= 1000:
            raise ApiError(f"--replicas must be a whole number from 0 to 1000, got {replicas!r}")
        d = cluster.objects.get(("Deployment", ns, name))
        if not isinstance(d, Deployment):
            raise ApiError(f'deployment "{name}" not found in namespace "{ns}" of cluster {cluster.name}')
        await cluster.write([replace(d, replicas=replicas)])
        return {"results": [f"deployment.apps/{name} scaled to {replicas}"]}

    async def op_get(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(req)
        kind = req.get("kind")
        if kind == "pods":
            items = []
            for p in list(cluster.pods.values()) + list(cluster._terminating):
                items.append(
                    {
                        **encode(p.model()),
                        "phase": p.phase,
                        "restarts": p.restarts,
                        "containers": [{"name": c.name, "pid": c.pid, "running": c.running} for c in p.containers],
                        "sidecar": None if p.sidecar is None else {"pid": p.sidecar.pid, "running": p.sidecar.running},
                        "netns": p.netns,
                    }
                )
            return {"items": items}
        if kind == "state":
            return {"state": encode(cluster.state())}
        kinds = {
            "services": "Service",
            "deployments": "Deployment",
            "namespaces": "Namespace",
            "serviceaccounts": "ServiceAccount",
            "secrets": "Secret",
        }
        if kind not in kinds:
            raise ApiError(f"unknown resource type {kind!r}")
        items = []
        for r in cluster.objects.values():
            if r.kind != kinds[kind]:
                continue
            item = dump_resource(r)
            if isinstance(r, Secret) and not req.get("data"):
                # Values only to those who ask (the multicluster CLI); never in a listing by default.
                item["data"] = {k: f"<redacted: {len(r.value(k) or b'')} bytes>" for k, _ in r.data}
            if r.kind == "Service":
                item.setdefault("spec", {})["clusterIP"] = cluster.service_ips.get((r.meta.namespace, r.meta.name))
            if isinstance(r, Deployment):
                pods = [
                    p
                    for p in cluster.pods.values()
                    if p.plan.deployment == r.meta.name and p.plan.namespace == r.meta.namespace
                ]
                item["status"] = {"replicas": len(pods), "readyReplicas": sum(1 for p in pods if p.ready)}
            items.append(item)
        items.sort(key=lambda i: (i.get("metadata", {}).get("namespace", ""), i.get("metadata", {}).get("name", "")))
        return {"items": items}

    async def op_pod(self, req: dict[str, Any]) -> dict[str, Any]:
        """Where a pod lives, for `logs` and `exec`."""
        cluster = self._cluster(req)
        name = str(req.get("name"))
        pod = cluster.pods.get(name) or next((p for p in cluster._terminating if p.plan.name == name), None)
        if pod is None:
            raise ApiError(f'pod "{name}" not found in cluster {cluster.name}')
        paths = self.d.paths
        return {
            "name": name,
            "namespace": pod.plan.namespace,
            "cluster": cluster.name,
            "netns": pod.netns,
            "dir": str(pod.dir),
            "log": str(paths.app_log(cluster.name, pod.plan.namespace, name)),
            "proxy_log": str(paths.proxy_log(cluster.name, pod.plan.namespace, name)),
        }

    async def op_restart_controlplane(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(req)
        if cluster.controlplane:
            cluster.controlplane.kill()
        return {"results": [f"control plane of {cluster.name} restarting"]}

    async def op_link_issue(self, req: dict[str, Any]) -> dict[str, Any]:
        """A credential to read this cluster's exports, and what a linking cluster needs to use it."""
        cluster = self._cluster(req)
        return link_ops.issue(cluster, self.d.link_apis.get(cluster.name), self.d.paths, req.get("linking_cluster"))

    async def op_link_revoke(self, req: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(req)
        return link_ops.revoke(cluster, self.d.link_apis.get(cluster.name), req.get("id"))

    async def op_link_credentials(self, req: dict[str, Any]) -> dict[str, Any]:
        """The credentials this cluster has issued and not revoked (ids and clusters only)."""
        cluster = self._cluster(req)
        return link_ops.credentials(cluster, self.d.link_apis.get(cluster.name))

    async def op_watch(self, req: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        try:
            cluster = self._cluster(req)
        except ApiError as e:
            writer.write(rpc.encode_line({"ok": False, "error": str(e)}))
            await writer.drain()
            writer.close()
            return
        q = cluster.watch()
        links = bool(req.get("links"))
        try:
            while True:
                state = await q.get()
                msg = {"ok": True, "state": encode(state)}
                if links:  # for the service mirrors: the link Secrets, with their data
                    msg["links"] = link_ops.link_secrets(cluster)
                writer.write(rpc.encode_line(msg))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            cluster.unwatch(q)
            with contextlib.suppress(Exception):
                writer.close()
