"""`isthmus identity rotate ...`: replace a cluster's issuer or the mesh's trust anchor while traffic flows.

Each step writes the mesh's files (isthmus.platform.local.trust_rotation),
confirms that every affected control plane's identity service now signs with
and hands out what the files hold, tells the sidecar agents to re-certify, and
waits until every sidecar's Envoy serves the result, read from its admin API
(isthmus.viz.admin). Which sidecar holds what is judged by
isthmus.identity.rotation.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from isthmus.cli import render
from isthmus.cli.commands import call_daemon, state_paths
from isthmus.cli.errors import CliError
from isthmus.identity.clock import Clock, SystemClock
from isthmus.identity.errors import IdentityError
from isthmus.identity.rotation import (
    NEW,
    Anchors,
    LiveSidecar,
    SidecarState,
    fingerprint,
    finish_check,
    judge_sidecar,
    pending,
    phase,
    recertified,
    trusts_both,
    trusts_only_new,
)
from isthmus.model.mesh import TRUST_BUNDLE_SECRET, WORKLOAD_SECRET
from isthmus.platform.local import rpc
from isthmus.platform.local import trust_rotation as files
from isthmus.platform.local.paths import StatePaths
from isthmus.viz.admin import AdminScraper, PodRef
from isthmus.viz.admin_local import LocalAdminScraper

DEFAULT_TIMEOUT = 120.0
MAX_TIMEOUT = 3600.0
MAX_LIFETIME_DAYS = 100 * 365
POLL_SECONDS = 0.5
# The workload chain and the trust bundle, by name; never the key, not even redacted.
LIVE_PATH = (
    "/config_dump?resource=dynamic_active_secrets"
    "&mask=secret.name,secret.tls_certificate.certificate_chain,secret.validation_context.trusted_ca"
)


def _progress(message: str) -> None:
    print(f"• {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- reading the sidecars


def parse_live(text: str, cluster: str, pod: str) -> LiveSidecar:
    """The workload chain and the trust bundle an Envoy holds, from its secrets config dump (pure)."""
    try:
        configs = json.loads(text).get("configs", [])
    except (ValueError, AttributeError):
        return LiveSidecar(cluster, pod, error="its admin API answered with something that is not JSON")
    chain: tuple[x509.Certificate, ...] = ()
    bundle: tuple[x509.Certificate, ...] = ()
    for entry in configs:
        secret = entry.get("secret", {}) if isinstance(entry, dict) else {}
        try:
            if secret.get("name") == WORKLOAD_SECRET:
                pem = secret.get("tls_certificate", {}).get("certificate_chain", {}).get("inline_string", "")
                chain = tuple(x509.load_pem_x509_certificates(pem.encode()))
            elif secret.get("name") == TRUST_BUNDLE_SECRET:
                pem = secret.get("validation_context", {}).get("trusted_ca", {}).get("inline_string", "")
                bundle = tuple(x509.load_pem_x509_certificates(pem.encode()))
        except ValueError:
            return LiveSidecar(cluster, pod, error=f"its Envoy holds a {secret.get('name')} secret that is not PEM")
    return LiveSidecar(cluster, pod, chain, bundle)


def _running_clusters(paths: StatePaths) -> list[str]:
    return [str(c["name"]) for c in call_daemon(paths, {"op": "status"})["clusters"]]


def live_sidecars(scraper: AdminScraper, pods: Sequence[PodRef]) -> list[LiveSidecar]:
    """What each pod's Envoy serves right now; a sidecar that cannot be read comes back with the reason."""
    replies = scraper.scrape(pods, [LIVE_PATH])
    out = []
    for pod in pods:
        reply = replies[pod]
        if reply.ok:
            out.append(parse_live(reply.bodies[LIVE_PATH], pod.cluster, pod.name))
        else:
            out.append(LiveSidecar(pod.cluster, pod.name, error=reply.error))
    return sorted(out, key=lambda s: (s.cluster, s.pod))


def read_sidecars(paths: StatePaths, clusters: Sequence[str]) -> list[LiveSidecar]:
    """Every running sidecar of `clusters` (one process enters the mesh and reads them all)."""
    netns = {}
    for cluster in clusters:
        for p in call_daemon(paths, {"op": "get", "kind": "pods", "cluster": cluster})["items"]:
            if p.get("phase") == "Running" and (p.get("sidecar") or {}).get("running") and p.get("netns"):
                netns[PodRef(cluster, p["namespace"], p["name"])] = str(p["netns"])
    return live_sidecars(LocalAdminScraper(paths, netns), sorted(netns))


def judge_all(stored: files.StoredTrust, live: Sequence[LiveSidecar]) -> list[SidecarState]:
    return [judge_sidecar(s, stored.issuers.get(s.cluster), stored.anchors) for s in live]


def wait_for_sidecars(
    paths: StatePaths,
    clock: Clock,
    clusters: Sequence[str],
    done: Callable[[SidecarState], bool],
    what: str,
    timeout: float,
) -> list[SidecarState]:
    """Poll the sidecars of `clusters` until every one is `done`, showing progress; CliError on timeout."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        states = judge_all(files.read_stored(paths, clock), read_sidecars(paths, clusters))
        left = pending(states, done)
        line = f"{len(states) - len(left)}/{len(states)} sidecars {what}"
        if left:
            line += f"; waiting for {_names(left)}"
        if line != last:
            _progress(line)
            last = line
        if not left:
            return states
        if time.monotonic() >= deadline:
            errors = [f"{s.name}: {s.error}" for s in left if s.error]
            raise CliError(
                f"after {timeout:.0f}s, {len(left)} sidecar(s) still do not {what}: {_names(left)}"
                + (f" ({errors[0]})" if errors else "")
                + "; the mesh has switched and they follow when their agents reach the identity service:"
                " see `isthmus identity rotate status` and `isthmus logs --proxy POD`"
            )
        time.sleep(POLL_SECONDS)


def _names(states: Sequence[SidecarState], shown: int = 4) -> str:
    more = f" and {len(states) - shown} more" if len(states) > shown else ""
    return ", ".join(s.name for s in states[:shown]) + more


# ---------------------------------------------------------------- the control planes


def confirm_control_planes(paths: StatePaths, clock: Clock, clusters: Sequence[str], timeout: float) -> None:
    """Wait until each cluster's identity service signs with its stored issuer and hands out the stored bundle."""
    stored = files.read_stored(paths, clock)
    bundle = [fingerprint(a) for a in stored.bundle.anchors]
    deadline = time.monotonic() + min(timeout, 30.0)
    for cluster in clusters:
        if cluster not in stored.issuers:
            raise CliError(
                f"cluster {cluster} has no issuer in {paths.issuer_cert(cluster)}; run `isthmus up` to make one"
            )
        want = fingerprint(stored.issuers[cluster])
        problem = "its control plane did not answer"
        while True:
            try:
                served = rpc.call(paths.controlplane_socket(cluster), {"op": "identity", "reload": True}, timeout=10)
            except (OSError, rpc.RpcError, ValueError) as e:
                served, problem = {}, f"its control plane did not answer ({e})"
            if served.get("ok"):
                if served["issuer"]["fingerprint"] == want and served["bundle"] == bundle:
                    break
                problem = served.get("error") or "it still serves the previous issuer or bundle"
            if time.monotonic() >= deadline:
                raise CliError(
                    f"cluster {cluster}: the identity service did not switch to the new trust material: {problem};"
                    f" the files are in place and it retries every second (see `isthmus logs --controlplane -c {cluster}`)"
                )
            time.sleep(0.2)


# ---------------------------------------------------------------- commands


def _check_timeout(args: argparse.Namespace) -> float:
    if not 0 < args.timeout <= MAX_TIMEOUT:
        raise CliError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT:.0f} seconds, got {args.timeout:g}")
    return float(args.timeout)


def _target_clusters(args: argparse.Namespace, running: Sequence[str]) -> list[str]:
    if args.all_clusters:
        return list(running)
    if args.cluster:
        if args.cluster not in running:
            raise CliError(f"no cluster named {args.cluster!r} (clusters: {', '.join(running) or 'none'})")
        return [args.cluster]
    if len(running) == 1:
        return list(running)
    raise CliError(f"this mesh has clusters {', '.join(running)}: name one with --cluster, or use --all-clusters")


def rotate_issuer(args: argparse.Namespace) -> int:
    paths, clock = state_paths(args), SystemClock()
    timeout = _check_timeout(args)
    if (args.issuer is None) != (args.issuer_key is None):
        raise CliError("--issuer needs --issuer-key too" if args.issuer else "--issuer-key needs --issuer too")
    if args.issuer and args.all_clusters:
        raise CliError("--issuer is one cluster's issuer: use it with --cluster C, not --all-clusters")
    if not 1 <= args.lifetime_days <= MAX_LIFETIME_DAYS:
        raise CliError(
            f"--lifetime-days must be a whole number from 1 to {MAX_LIFETIME_DAYS}, got {args.lifetime_days}"
        )
    stored = files.read_stored(paths, clock)
    running = _running_clusters(paths)
    clusters = _target_clusters(args, running)
    if stored.anchors.rotating:
        # A certificate from the new anchor is refused by any sidecar that does not trust it yet.
        states = judge_all(stored, read_sidecars(paths, running))
        if behind := pending(states, trusts_both):
            raise CliError(
                f"sidecars {_names(behind)} are not known to trust the new anchor yet, so they could refuse"
                " certificates from an issuer made from it; wait for them (`isthmus identity rotate anchor begin`"
                " again waits); nothing was changed"
            )
    user = (Path(args.issuer).expanduser(), Path(args.issuer_key).expanduser()) if args.issuer else None
    issuers = files.plan_issuers(paths, stored, clusters, user, clock, timedelta(days=args.lifetime_days))
    backups = files.install_issuers(paths, issuers, clock.now())
    which = "new trust anchor" if stored.anchors.rotating else "trust anchor"
    for cluster, issuer in issuers.items():
        _progress(
            f"cluster {cluster}: new issuer serial {_serial(issuer.certificate)} from the {which},"
            f" valid until {issuer.not_after:%Y-%m-%d}; the old one is kept in {backups[cluster]}"
        )
    confirm_control_planes(paths, clock, clusters, timeout)
    _progress(f"the identity service of {_plural('cluster', clusters)} signs with the new issuer")
    for cluster in clusters:
        files.bump_recertify(paths, cluster)
    states = wait_for_sidecars(paths, clock, clusters, recertified, "serve a certificate from the new issuer", timeout)
    print(
        f"rotated the issuer of {_plural('cluster', clusters)}: {len(states)} sidecar(s) serve certificates from it"
        + (f" ({_idle(states)})" if _idle(states) else "")
    )
    if stored.anchors.rotating:
        _next_after_issuers(paths, clock, running)
    return 0


def _next_after_issuers(paths: StatePaths, clock: Clock, running: Sequence[str]) -> None:
    stored = files.read_stored(paths, clock)
    rest = sorted(c for c, cert in stored.issuers.items() if stored.anchors.role_of_signer(cert) != NEW)
    if rest:
        print(f"Next: rotate the other issuers (isthmus identity rotate issuer --cluster {rest[0]}, or --all-clusters)")
    else:
        print("Next: isthmus identity rotate anchor finish")


def anchor_begin(args: argparse.Namespace) -> int:
    paths, clock = state_paths(args), SystemClock()
    timeout = _check_timeout(args)
    stored = files.read_stored(paths, clock)
    cert = Path(args.trust_anchor).expanduser() if args.trust_anchor else None
    key = Path(args.trust_anchor_key).expanduser() if args.trust_anchor_key else None
    new = files.plan_anchor_begin(paths, stored, cert, key, clock)
    running = _running_clusters(paths)
    files.install_anchor_begin(paths, stored, new)
    if new.resumed:
        _progress(f"an anchor rotation to {_cn(new.certificate)!r} is in progress; checking the sidecars")
    else:
        _progress(f"new trust anchor {_cn(new.certificate)!r} stored in {paths.next_anchor_cert}")
        _progress("the trust bundle holds the old and the new anchor")
    confirm_control_planes(paths, clock, running, timeout)
    states = judge_all(files.read_stored(paths, clock), read_sidecars(paths, running))
    if not new.resumed or pending(states, trusts_both):
        for cluster in running:
            files.bump_recertify(paths, cluster)
    states = wait_for_sidecars(paths, clock, running, trusts_both, "trust the old and the new anchor", timeout)
    print(f"every sidecar ({len(states)}) trusts the old and the new trust anchor")
    if new.key_pem is None and not paths.next_anchor_key.exists():
        print(
            "Next: for each cluster, an issuer from the new anchor (isthmus identity issuer create ...), then"
            " isthmus identity rotate issuer --cluster C --issuer CERT --issuer-key KEY"
        )
    else:
        print("Next: isthmus identity rotate issuer --all-clusters")
    return 0


def anchor_finish(args: argparse.Namespace) -> int:
    paths, clock = state_paths(args), SystemClock()
    timeout = _check_timeout(args)
    stored = files.read_stored(paths, clock)
    if not stored.anchors.rotating:
        raise CliError("no anchor rotation is in progress; start one with `isthmus identity rotate anchor begin`")
    running = _running_clusters(paths)
    check = finish_check(stored.anchors, stored.issuers, judge_all(stored, read_sidecars(paths, running)))
    if not check.ready:
        raise CliError(check.refusal())
    old = stored.anchors.current
    _, backup = files.install_anchor_finish(paths, stored, clock.now())
    _progress(f"the trust bundle holds only {_cn(stored.anchors.signing)!r}; the old anchor is kept in {backup}")
    confirm_control_planes(paths, clock, running, timeout)
    for cluster in running:
        files.bump_recertify(paths, cluster)
    states = wait_for_sidecars(paths, clock, running, trusts_only_new, "trust only the new anchor", timeout)
    print(
        f"finished the anchor rotation: {len(states)} sidecar(s) trust only {_cn(stored.anchors.signing)!r};"
        f" {_cn(old)!r} is no longer trusted (backup: {backup})"
    )
    return 0


def status(args: argparse.Namespace) -> int:
    paths, clock = state_paths(args), SystemClock()
    stored = files.read_stored(paths, clock)
    running = _running_clusters(paths)
    states = judge_all(stored, read_sidecars(paths, running))
    view = status_view(stored, states, clock.now())
    print(render.as_json(view) if args.output == "json" else render_status(view))
    return 0


# ---------------------------------------------------------------- status, pure


def status_view(stored: files.StoredTrust, states: Sequence[SidecarState], now: datetime) -> dict[str, Any]:
    anchors = stored.anchors
    doing, then = phase(anchors, stored.issuers, states)
    return {
        "phase": doing,
        "next": then,
        "rotating": anchors.rotating,
        "anchors": [_anchor(a, anchors) for a in (anchors.current, anchors.next) if a is not None],
        "bundle": [anchors.role(a) for a in stored.bundle.anchors],
        "clusters": [
            {
                "cluster": cluster,
                "issuer_serial": f"{cert.serial_number:x}",
                "issuer_not_after": _iso(cert.not_valid_after_utc),
                "anchor": anchors.role_of_signer(cert),
            }
            for cluster, cert in sorted(stored.issuers.items())
        ],
        "pods": [
            {
                "cluster": s.cluster,
                "pod": s.pod,
                "serial": None if s.serial is None else f"{s.serial:x}",
                "expires": None if s.expires is None else _iso(s.expires),
                "on_current_issuer": s.on_current_issuer,
                "anchor": s.anchor,
                "trusts": list(s.bundle),
                "error": s.error,
            }
            for s in states
        ],
        "checked_at": _iso(now),
    }


def render_status(view: Mapping[str, Any]) -> str:
    lines = [f"Phase: {view['phase']}", f"Next:  {view['next']}", ""]
    lines.append(
        render.table(
            ["ANCHOR", "SERIAL", "NOT-AFTER", "SUBJECT"],
            [[a["role"], _short(a["serial"]), a["not_after"][:10], a["subject"]] for a in view["anchors"]],
        )
    )
    lines.append(f"Trust bundle: {'+'.join(view['bundle'])}")
    lines.append("")
    lines.append(
        render.table(
            ["CLUSTER", "ISSUER-SERIAL", "NOT-AFTER", "ANCHOR"],
            [
                [c["cluster"], _short(c["issuer_serial"]), c["issuer_not_after"][:10], c["anchor"]]
                for c in view["clusters"]
            ],
        )
    )
    lines.append("")
    if not view["pods"]:
        lines.append("No running sidecars.")
    else:
        rows = []
        for p in view["pods"]:
            if p["error"]:
                rows.append([p["cluster"], p["pod"], "?", "?", "?", "?", p["error"]])
            elif p["serial"] is None:
                rows.append([p["cluster"], p["pod"], "-", "-", "-", "-", "no certificate loaded yet (unused)"])
            else:
                rows.append(
                    [
                        p["cluster"],
                        p["pod"],
                        _short(p["serial"]),
                        "yes" if p["on_current_issuer"] else "no",
                        p["anchor"],
                        "+".join(p["trusts"]) or "-",
                        p["expires"].replace("T", " "),
                    ]
                )
        lines.append(render.table(["CLUSTER", "POD", "CERT-SERIAL", "ON-ISSUER", "ANCHOR", "TRUSTS", "EXPIRES"], rows))
    return "\n".join(lines)


def _anchor(cert: x509.Certificate, anchors: Anchors) -> dict[str, str]:
    return {
        "role": anchors.role(cert),
        "subject": cert.subject.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "not_after": _iso(cert.not_valid_after_utc),
        "fingerprint_sha256": fingerprint(cert),
    }


def _short(serial: str) -> str:
    return serial if len(serial) <= 12 else serial[:12] + "…"


def _serial(cert: x509.Certificate) -> str:
    return _short(f"{cert.serial_number:x}")


def _cn(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plural(word: str, names: Sequence[str]) -> str:
    return f"{word}{'s' if len(names) > 1 else ''} {', '.join(names)}"


def _idle(states: Sequence[SidecarState]) -> str:
    idle = [s for s in states if s.idle]
    return f"{len(idle)} hold no certificate yet and will load the new one" if idle else ""


# ---------------------------------------------------------------- arguments


def _one_line_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except IdentityError as e:
            raise CliError(str(e)) from e

    return run


STEPS = """\
Anchor rotation, step by step (traffic keeps flowing throughout):
  isthmus identity rotate anchor begin          # new anchor; every sidecar trusts old + new
  isthmus identity rotate issuer --all-clusters # issuers from the new anchor; sidecars re-certify
  isthmus identity rotate anchor finish         # every sidecar trusts only the new anchor
Check where the mesh stands at any time with `isthmus identity rotate status`."""


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `isthmus identity rotate ...` under `isthmus identity`."""
    group = verbs.add_parser(
        "rotate",
        help="replace an issuer or the trust anchor without failed requests",
        description=textwrap.fill(
            "Replace a cluster's issuer, or the mesh's trust anchor, while the mesh runs. Every step switches the"
            " identity services, makes every sidecar get a new certificate (no Envoy restart, no dropped"
            " connection), and waits until each sidecar's Envoy serves it.",
            79,
        )
        + "\n\n"
        + STEPS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    steps = group.add_subparsers(dest="rotate_command", metavar="COMMAND", required=True)

    p = steps.add_parser(
        "issuer",
        help="give a cluster (or all) a new issuer; every sidecar there re-certifies",
        description="Give a cluster a new issuer, made from the trust anchor (the new one while an anchor"
        " rotation is in progress) or your own (--issuer/--issuer-key, checked like `isthmus up --issuer`). The"
        " identity service switches to it, every sidecar of the cluster gets a new key and certificate from it,"
        " and the command waits until every sidecar's Envoy serves one. The old issuer is kept in the cluster's"
        " identity/retired folder. Certificates from the old issuer stay valid until they expire, so no"
        " connection fails meanwhile.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--cluster", "-c", help="the cluster (needed when more than one runs)")
    where.add_argument("--all-clusters", action="store_true", help="every cluster of the mesh, each its own issuer")
    p.add_argument("--issuer", metavar="CERT", help="your own new issuer, signed by the mesh's (new) trust anchor")
    p.add_argument("--issuer-key", metavar="KEY", help="its private key")
    p.add_argument(
        "--lifetime-days", type=int, default=365, metavar="N", help="validity of a generated issuer (default 365)"
    )
    _timeout(p)
    p.set_defaults(func=_one_line_errors(rotate_issuer))

    anchor = steps.add_parser(
        "anchor",
        help="replace the trust anchor: begin, then new issuers, then finish",
        description="Replace the mesh's trust anchor in three steps, without failed requests.\n\n" + STEPS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).add_subparsers(dest="anchor_step", metavar="STEP", required=True)
    p = anchor.add_parser(
        "begin",
        help="add a new anchor to the trust bundle (old + new) and wait until every sidecar trusts both",
        description="Start an anchor rotation: a new trust anchor (made here, or yours with --trust-anchor) joins"
        " the trust bundle beside the old one, and every sidecar gets the bundle of both. Nothing chains to the"
        " new anchor yet. Run it again to keep waiting for the sidecars. Next: `isthmus identity rotate issuer"
        " --all-clusters`.",
    )
    p.add_argument("--trust-anchor", metavar="CERT", help="your own new anchor (a self-signed ECDSA P-256 CA)")
    p.add_argument(
        "--trust-anchor-key",
        metavar="KEY",
        help="its key, so that isthmus can make the new issuers (without it, bring each with --issuer)",
    )
    _timeout(p)
    p.set_defaults(func=_one_line_errors(anchor_begin))
    p = anchor.add_parser(
        "finish",
        help="drop the old anchor once every issuer and certificate chains to the new one",
        description="End an anchor rotation: refused, naming what is left, unless every cluster's issuer and"
        " every sidecar's live certificate chain to the new anchor. Then the trust bundle holds only the new"
        " anchor, which becomes the mesh's anchor (the old one is kept in identity/retired), and every sidecar"
        " stops trusting the old one.",
    )
    _timeout(p)
    p.set_defaults(func=_one_line_errors(anchor_finish))

    p = steps.add_parser(
        "status",
        help="where a rotation stands: issuers, and each sidecar's certificate and trust bundle",
        description="Show the mesh's anchors and trust bundle, each cluster's issuer (serial, expiry, which"
        " anchor signed it), and for each running sidecar the certificate its Envoy serves (which issuer and"
        " anchor) and the anchors it trusts; then the rotation's phase and what to run next.",
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.set_defaults(func=_one_line_errors(status))


def _timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the sidecars (default {DEFAULT_TIMEOUT:.0f})",
    )
