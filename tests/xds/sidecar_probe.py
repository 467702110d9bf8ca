"""Run inside fresh user, network, mount and PID namespaces: start Envoy and an app, redirect
traffic the way a pod does, look at everything from the inside, print JSON.

Stdlib only; `test_envoy_serves` runs it as `unshare -Urnmpf python sidecar_probe.py ...`.
Usage: sidecar_probe.py ENVOY CONFIG LOG POD_IP APP_PORT OTHER_IP MARK
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

HEADER = "x-isthmus-orig-proto"


class EchoHeaders(http.server.BaseHTTPRequestHandler):
    """The app: an HTTP/1.1-only server that answers with the request headers it saw."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int | None, str]:
    try:
        req = urllib.request.Request(url, method=method, headers=headers or {})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def closed_without_answer(ip: str, port: int) -> bool:
    """True when Envoy just closes; False when nothing answers (the connection went round in a loop)."""
    with socket.create_connection((ip, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        try:
            return s.recv(100) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def redirect_like_a_pod(pod_ip: str, other_ip: str, mark: int) -> None:
    """Connections to pod_ip go to the inbound listener and to other_ip to the outbound
    one, unless Envoy made them (marked). One namespace stands in for the pod's
    PREROUTING (inbound) and OUTPUT (outbound) rules."""
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run"], check=True)  # the xtables lock
    rules = [
        ["-m", "mark", "--mark", str(mark), "-j", "RETURN"],
        ["-d", pod_ip, "--dport", "4191", "-j", "RETURN"],
        ["-d", pod_ip, "-j", "REDIRECT", "--to-ports", "4143"],
        ["-d", other_ip, "-j", "REDIRECT", "--to-ports", "4140"],
    ]
    for rule in rules:
        subprocess.run(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", *rule], check=True)


def main(envoy: str, config: str, log: str, pod_ip: str, app_port: str, other_ip: str, mark: str) -> dict[str, Any]:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    redirect_like_a_pod(pod_ip, other_ip, int(mark))
    app = http.server.ThreadingHTTPServer((pod_ip, int(app_port)), EchoHeaders)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    cmd = [envoy, "-c", config, "--disable-hot-restart", "--log-level", "info", "--log-path", log]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out: dict[str, Any] = {}
    public = f"http://{pod_ip}:4191"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and fetch(f"{public}/ready")[0] != 200:
            if proc.poll() is not None:
                out["exited"] = proc.returncode
                return out
            time.sleep(0.1)
        out["ready"] = fetch(f"{public}/ready")[0]
        status, body = fetch(f"{public}/metrics")
        out["metrics"] = status, "envoy_server_live" in body
        status, body = fetch(f"{public}/stats/prometheus")
        out["prometheus"] = status, "envoy_server_live" in body
        out["config_dump_from_pod_ip"] = fetch(f"{public}/config_dump")[0]
        out["quit_from_pod_ip"] = fetch(f"{public}/quitquitquit", "POST")[0]
        dump = json.loads(fetch("http://127.0.0.1:4191/config_dump?include_eds")[1])
        names: dict[str, list[str]] = {}
        for section in dump["configs"]:
            for key, items in section.items():
                if key.startswith("dynamic_") and isinstance(items, list):
                    names[key] = sorted(_name(i) for i in items)
        out["dynamic"] = names

        app_url = f"http://{pod_ip}:{app_port}/"
        inbound: dict[str, Any] = {}
        for label, headers in (("none", {}), ("HTTP/1.1", {HEADER: "HTTP/1.1"}), ("HTTP/2", {HEADER: "HTTP/2"})):
            status, body = fetch(app_url, headers=headers)
            seen = json.loads(body) if status == 200 else {}
            inbound[label] = {"status": status, "app_saw_header": HEADER in seen}
        out["inbound"] = inbound
        wanted = urllib.parse.quote(rf"^cluster\.inbound\|{app_port}.*\.upstream_(rq|cx)_total$")
        stats = fetch(f"http://127.0.0.1:4191/stats?filter={wanted}")[1]
        out["inbound_stats"] = dict(line.split(": ") for line in stats.splitlines() if ": " in line)

        out["loop_guard_closes"] = {
            "inbound": closed_without_answer(pod_ip, 4143),
            "outbound": closed_without_answer(other_ip, 4140),
        }
        out["still_ready"] = fetch(f"{public}/ready")[0]
    finally:
        proc.terminate()
        proc.wait(10)
        app.shutdown()
    return out


def _name(item: dict[str, Any]) -> str:
    """The resource name in one config_dump entry (listeners carry it on the entry itself)."""
    if "name" in item:
        return str(item["name"])
    for key in ("cluster", "route_config", "endpoint_config"):
        if key in item:
            return str(item[key].get("name") or item[key].get("cluster_name"))
    return "?"


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:8])))
