"""Pure rendering of what the daemon returns into what the terminal shows."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import yaml


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[("<none>" if c is None or c == "" else str(c)) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def as_json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


def as_yaml(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def _labels(pairs: Sequence[Sequence[str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in pairs)


def pods(items: Sequence[Mapping[str, Any]], wide: bool) -> str:
    headers = ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "IP"]
    if wide:
        headers += ["DEPLOYMENT", "SERVICEACCOUNT", "MESHED"]
    rows = []
    for p in items:
        containers = p.get("containers", [])
        total = len(containers) + (1 if p.get("sidecar") else 0)
        up = sum(1 for c in containers if c.get("running")) + (1 if (p.get("sidecar") or {}).get("running") else 0)
        ready = f"{up if p.get('ready') else 0}/{total}"
        row: list[object] = [p["namespace"], p["name"], ready, p.get("phase"), p.get("restarts", 0), p.get("ip")]
        if wide:
            row += [p.get("deployment"), p.get("service_account"), "yes" if p.get("sidecar") else "no"]
        rows.append(row)
    return table(headers, rows)


def services(items: Sequence[Mapping[str, Any]], wide: bool) -> str:
    headers = ["NAMESPACE", "NAME", "CLUSTER-IP", "PORTS"] + (["SELECTOR"] if wide else [])
    rows = []
    for s in items:
        spec = s.get("spec", {})
        ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
        row: list[object] = [
            s["metadata"].get("namespace", "default"),
            s["metadata"]["name"],
            spec.get("clusterIP"),
            ports,
        ]
        if wide:
            row.append(",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()))
        rows.append(row)
    return table(headers, rows)


def deployments(items: Sequence[Mapping[str, Any]], wide: bool) -> str:
    headers = ["NAMESPACE", "NAME", "READY", "UP-TO-DATE"] + (["COMMAND"] if wide else [])
    rows = []
    for d in items:
        want = d.get("spec", {}).get("replicas", 1)
        st = d.get("status", {})
        row: list[object] = [
            d["metadata"].get("namespace", "default"),
            d["metadata"]["name"],
            f"{st.get('readyReplicas', 0)}/{want}",
            st.get("replicas", 0),
        ]
        if wide:
            containers = d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
            row.append(" ".join(containers[0].get("command", [])) if containers else "")
        rows.append(row)
    return table(headers, rows)


def named(items: Sequence[Mapping[str, Any]], wide: bool) -> str:
    has_ns = any("namespace" in i.get("metadata", {}) for i in items)
    headers = (["NAMESPACE"] if has_ns else []) + ["NAME"]
    rows = [([i["metadata"].get("namespace", "")] if has_ns else []) + [i["metadata"]["name"]] for i in items]
    return table(headers, rows)


def check_results(results: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for r in results:
        mark = "√" if r["ok"] else ("‼" if r.get("warning") else "×")
        lines.append(f"{mark} {r['name']}")
        if not r["ok"] and r.get("hint"):
            for hint_line in str(r["hint"]).splitlines():
                lines.append(f"    {hint_line}")
    failed = sum(1 for r in results if not r["ok"] and not r.get("warning"))
    lines.append("")
    lines.append("Status check results are √" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)


def age(since: float, now: float | None = None) -> str:
    secs = int((now or time.time()) - since)
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h"


def duration(seconds: float) -> str:
    """A time span for people: '23h59m', '364d 3h', '5m'; negative spans read as such ('-2h5m')."""
    sign, secs = ("-" if seconds < 0 else ""), int(abs(seconds))
    days, hours, minutes = secs // 86400, secs % 86400 // 3600, secs % 3600 // 60
    if days:
        return f"{sign}{days}d {hours}h"
    if hours:
        return f"{sign}{hours}h{minutes:02d}m"
    return f"{sign}{minutes}m" if minutes else f"{sign}{secs}s"


def pod_identity(found: Mapping[str, Any]) -> str:
    """`isthmus identity show`: one field a line, as `identity show -o json` has them."""
    issuer = found["issuer"]
    remaining = found["remaining_seconds"]
    left = f"in {duration(remaining)}" if remaining > 0 else f"expired {duration(-remaining)} ago"
    by = f"the issuer of cluster {issuer['cluster']}" if issuer["cluster"] else "not an issuer of this mesh"
    anchor = (
        f"{found['trust_anchor']} (chain verified)" if found["chain_verified"] else f"<none>: {found['chain_problem']}"
    )
    rows = [
        ("Pod", f"{found['pod']} (namespace {found['namespace']}, cluster {found['cluster']})"),
        ("Identity", found["spiffe_id"] or "<none>"),
        ("Serial", found["serial"]),
        ("Issuer", f"{issuer['subject']} ({by})"),
        ("Trust anchor", anchor),
        ("Not before", _when(found["not_before"])),
        ("Expires", f"{_when(found['not_after'])} ({left})"),
    ]
    width = max(len(k) for k, _ in rows) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {v}" for k, v in rows)


def _when(iso: str) -> str:
    return iso.replace("T", " ")
