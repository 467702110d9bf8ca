"""Run inside fresh user, network, mount and PID namespaces: build a small pod network (a
bridge, one network namespace per pod), start each pod's apps and sidecar, run the actions
the test asks for, print their results as JSON.

Stdlib only; `test_mtls_live` runs it as `unshare -Urnmpf python mesh_probe.py SPEC.json`.
Every wait is bounded. When this process exits, the PID namespace takes every Envoy and
app with it, and the network namespaces vanish with the mount namespace's /run.

The root network namespace stands for the node and for any client outside the mesh
(it has `node_ip`, which pod redirect rules let through, and `outside_ip`, which they
do not). The pods' apps answer HTTP with JSON naming the pod and the headers they saw,
and echo raw TCP.
"""

from __future__ import annotations

import ctypes
import hashlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
WAIT = 30.0


def run(*argv: str, stdin: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def must(*argv: str, stdin: str | None = None) -> None:
    proc = run(*argv, stdin=stdin)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")


@contextmanager
def entered(netns: str | None) -> Iterator[None]:
    """Sockets this thread makes inside the block belong to `netns` (None: stay here)."""
    if netns is None:
        yield
        return
    with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{netns}") as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")


# ---- the apps -------------------------------------------------------------------


def echo_headers(pod: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen = {k.lower(): v for k, v in self.headers.items()}
            body = json.dumps({"pod": pod, "headers": seen}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


class ThreadingTcp(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_apps(pod: dict[str, Any]) -> list[socketserver.BaseServer]:
    servers: list[socketserver.BaseServer] = []
    with entered(pod["name"]):  # the listening sockets stay in the pod's namespace
        for port in pod.get("http_ports", []):
            servers.append(http.server.ThreadingHTTPServer(("0.0.0.0", port), echo_headers(pod["name"])))
        for port in pod.get("echo_ports", []):
            servers.append(ThreadingTcp(("0.0.0.0", port), Echo))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    return servers


# ---- the network ----------------------------------------------------------------


def build_network(spec: dict[str, Any]) -> None:
    must("mount", "-t", "tmpfs", "tmpfs", "/run")  # /run/netns and the xtables lock, private to us
    must("ip", "link", "set", "lo", "up")
    must("ip", "link", "add", "br0", "type", "bridge")
    for ip in (spec["node_ip"], spec["outside_ip"]):
        must("ip", "addr", "add", f"{ip}/{spec['prefixlen']}", "dev", "br0")
    must("ip", "link", "set", "br0", "up")
    for i, pod in enumerate(spec["pods"]):
        ns, veth = pod["name"], f"veth{i}"
        must("ip", "netns", "add", ns)
        must("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        must("ip", "link", "set", veth, "master", "br0", "up")
        for argv in (
            ("ip", "link", "set", "lo", "up"),
            ("ip", "addr", "add", f"{pod['ip']}/{spec['prefixlen']}", "dev", "eth0"),
            ("ip", "link", "set", "eth0", "up"),
            ("ip", "route", "add", "default", "via", spec["node_ip"]),
        ):
            must("ip", "netns", "exec", ns, *argv)
        if pod.get("iptables"):
            must("ip", "netns", "exec", ns, "iptables-restore", "--noflush", stdin=pod["iptables"])


def start_envoy(envoy: str, pod: dict[str, Any]) -> subprocess.Popen[bytes]:
    cmd = [envoy, "-c", pod["bootstrap"], "--disable-hot-restart", "--concurrency", "1"]
    cmd += ["--log-level", "info", "--log-path", pod["log"]]
    return subprocess.Popen(
        ["ip", "netns", "exec", pod["name"], *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def admin_stats(netns: str, pattern: str) -> dict[str, int]:
    query = urllib.parse.quote(pattern)
    with entered(netns), urllib.request.urlopen(f"http://127.0.0.1:4191/stats?filter={query}", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            out[name] = int(value)
    return out


def wait_ready(pod: dict[str, Any], proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Until the sidecar has applied its config and no listener is still warming (SDS loaded)."""
    deadline = time.monotonic() + WAIT
    stats: dict[str, int] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return {"exited": proc.returncode}
        try:
            stats = admin_stats(
                pod["name"], r"^listener_manager\.(total_listeners_(warming|active)|lds\.update_success)$"
            )
        except OSError:
            stats = {}
        if (
            stats.get("listener_manager.lds.update_success", 0) >= 1
            and stats.get("listener_manager.total_listeners_warming", 1) == 0
        ):
            return {"ready": True, "stats": stats}
        time.sleep(0.1)
    return {"ready": False, "stats": stats}


# ---- the clients ----------------------------------------------------------------


def _connect(ip: str, port: int, netns: str | None, source: str | None) -> socket.socket:
    with entered(netns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    if source:
        s.bind((source, 0))
    s.connect((ip, port))
    return s


def _request(ip: str, headers: dict[str, str]) -> bytes:
    lines = ["GET / HTTP/1.1", f"host: {ip}", "connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_all(s: socket.socket | ssl.SSLSocket) -> bytes:
    chunks = []
    while data := s.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def _parse(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {"status": None, "closed_without_answer": True}
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return {"status": status, "body": json.loads(body)}
    except ValueError:
        return {"status": status, "text": body.decode(errors="replace")[:500]}


def op_http(a: dict[str, Any]) -> dict[str, Any]:
    """A plaintext HTTP/1.1 GET (from a pod's namespace, or from outside with a source address)."""
    try:
        with _connect(a["ip"], a["port"], a.get("netns"), a.get("source")) as s:
            s.sendall(_request(a["ip"], a.get("headers", {})))
            return _parse(_read_all(s))
    except ConnectionResetError:
        return {"status": None, "closed_without_answer": True, "reset": True}
    except OSError as e:
        return {"status": None, "error": repr(e)}


def _tls_context(a: dict[str, Any]) -> ssl.SSLContext:
    # The client side of these checks does not judge the server: the inbound sidecar is under test.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if a.get("cert"):
        ctx.load_cert_chain(a["cert"], a["key"])
    if a.get("alpn"):
        ctx.set_alpn_protocols(a["alpn"])
    return ctx


def op_tls(a: dict[str, Any]) -> dict[str, Any]:
    """HTTP/1.1 over TLS with a client certificate, from outside the mesh.

    In TLS 1.3 the client's handshake completes before the server has judged the client
    certificate; a refusal shows as an alert (or a close) on the first read.
    """
    out: dict[str, Any] = {"handshake": False}
    try:
        raw = _connect(a["ip"], a["port"], a.get("netns"), a.get("source"))
        with _tls_context(a).wrap_socket(raw) as s:
            out["handshake"] = True
            out["alpn"] = s.selected_alpn_protocol()
            out["version"] = s.version()
            der = s.getpeercert(binary_form=True)
            out["peer_cert_sha"] = None if der is None else hashlib.sha256(der).hexdigest()
            s.sendall(_request(a["ip"], a.get("headers", {})))
            out.update(_parse(_read_all(s)))
    except (OSError, ssl.SSLError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
        out.setdefault("status", None)
    return out


def op_echo(a: dict[str, Any]) -> dict[str, Any]:
    try:
        with _connect(a["ip"], a["port"], a.get("netns"), a.get("source")) as s:
            s.sendall(a["data"].encode())
            s.shutdown(socket.SHUT_WR)
            return {"echoed": _read_all(s).decode(errors="replace")}
    except OSError as e:
        return {"echoed": None, "error": repr(e)}


def op_curl(a: dict[str, Any]) -> dict[str, Any]:
    argv = ["curl", "-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}", *a["args"]]
    if a.get("netns"):
        argv = ["ip", "netns", "exec", a["netns"], *argv]
    proc = run(*argv)
    body, _, code = proc.stdout.rpartition("\n")
    out: dict[str, Any] = {"exit": proc.returncode, "status": int(code) if code.isdigit() else None}
    try:
        out["body"] = json.loads(body)
    except ValueError:
        out["text"] = (body + proc.stderr)[:500]
    return out


def op_stats(a: dict[str, Any]) -> dict[str, Any]:
    return {"stats": admin_stats(a["netns"], a["filter"])}


def op_rotate(a: dict[str, Any]) -> dict[str, Any]:
    """What the agent does on renewal (isthmus.proxy.sds_files.write_sds_files): each file
    written beside its target and renamed over it, in order; then the old key deleted."""
    target = Path(a["target"])
    for name in a["files"]:
        tmp = target / f".{name}.tmp"
        shutil.copyfile(Path(a["staged"]) / name, tmp)
        os.chmod(tmp, 0o600)
        tmp.replace(target / name)
    for name in a["remove"]:
        (target / name).unlink()
    return {"left": sorted(p.name for p in target.iterdir())}


def op_wait_cert(a: dict[str, Any]) -> dict[str, Any]:
    """How long until new TLS connections see a different server certificate than `a['old']`."""
    start = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - start < a.get("timeout", 10):
        last = op_tls(a)
        if last.get("peer_cert_sha") not in (None, a["old"]):
            return {"changed_after_s": round(time.monotonic() - start, 3), "last": last}
        time.sleep(0.02)
    return {"changed_after_s": None, "last": last}


def op_sleep(a: dict[str, Any]) -> dict[str, Any]:
    time.sleep(min(float(a["seconds"]), 5))
    return {}


OPS = {
    "sleep": op_sleep,
    "http": op_http,
    "tls": op_tls,
    "echo": op_echo,
    "curl": op_curl,
    "stats": op_stats,
    "rotate": op_rotate,
    "wait_cert": op_wait_cert,
}


def main(spec_path: str) -> dict[str, Any]:
    spec = json.loads(Path(spec_path).read_text())
    build_network(spec)
    servers = [s for pod in spec["pods"] for s in start_apps(pod)]
    envoys = {pod["name"]: start_envoy(spec["envoy"], pod) for pod in spec["pods"] if pod.get("bootstrap")}
    out: dict[str, Any] = {"results": []}
    try:
        out["ready"] = {p["name"]: wait_ready(p, envoys[p["name"]]) for p in spec["pods"] if p["name"] in envoys}
        if not all(r.get("ready") for r in out["ready"].values()):
            return out
        for action in spec["actions"]:
            try:
                result = OPS[action["op"]](action)
            except Exception as e:  # a broken check must not hide the others' results
                result = {"exception": repr(e)}
            out["results"].append({"id": action.get("id", action["op"]), **result})
        out["envoys_still_running"] = {name: p.poll() is None for name, p in envoys.items()}
    finally:
        for p in envoys.values():
            p.terminate()
        for p in envoys.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in servers:
            s.shutdown()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
