"""Network namespaces, bridges and veths for the local platform (I/O through `ip` and `iptables`).

Everything here runs inside the isthmus user + network + mount namespace, where
/run is a private tmpfs: named namespaces live in /run/netns and vanish with it.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from isthmus.platform.local.netplan import ClusterNetwork

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class CommandFailed(RuntimeError):
    def __init__(self, argv: tuple[str, ...], code: int, output: str) -> None:
        super().__init__(f"{' '.join(argv)} exited {code}: {output.strip()}")
        self.argv = argv
        self.code = code


async def run(*argv: str, stdin: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(stdin.encode() if stdin is not None else None)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(tuple(argv), proc.returncode or 0, text)
    return text


def mac_for(ip: str) -> str:
    """A locally administered MAC derived from an IPv4 address (as Docker does)."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))


def netns_path(name: str) -> str:
    return f"/run/netns/{name}"


async def in_netns(name: str, *argv: str, stdin: str | None = None) -> str:
    return await run("ip", "netns", "exec", name, *argv, stdin=stdin)


async def create_cluster(net: ClusterNetwork) -> None:
    """The cluster's own namespace with its pod bridge; the node address sits on the bridge."""
    ns = net.netns
    if os.path.exists(netns_path(ns)):
        await run("ip", "netns", "del", ns)
    await run("ip", "netns", "add", ns)
    await in_netns(ns, "ip", "link", "set", "lo", "up")
    # A fixed MAC: a bridge otherwise takes a port's, and changes it when that pod goes.
    await in_netns(ns, "ip", "link", "add", "br0", "address", mac_for(net.node_ip), "type", "bridge")
    await in_netns(ns, "ip", "addr", "add", f"{net.node_ip}/{net.prefixlen}", "dev", "br0")
    await in_netns(ns, "ip", "link", "set", "br0", "up")


async def delete_netns(name: str) -> None:
    if os.path.exists(netns_path(name)):
        await run("ip", "netns", "del", name)


async def create_pod(net: ClusterNetwork, pod_netns: str, veth: str, ip: str) -> None:
    if os.path.exists(netns_path(pod_netns)):
        await run("ip", "netns", "del", pod_netns)
    await run("ip", "netns", "add", pod_netns)
    # The MAC follows from the IP, so when a pod reuses a departed pod's address, the
    # neighbours' cached ARP entries for it are still right.
    peer = ["peer", "name", "eth0", "address", mac_for(ip), "netns", pod_netns]
    await run("ip", "link", "add", veth, "netns", net.netns, "type", "veth", *peer)
    await in_netns(net.netns, "ip", "link", "set", veth, "master", "br0", "up")
    await in_netns(pod_netns, "ip", "link", "set", "lo", "up")
    await in_netns(pod_netns, "ip", "addr", "add", f"{ip}/{net.prefixlen}", "dev", "eth0")
    await in_netns(pod_netns, "ip", "link", "set", "eth0", "up")
    await in_netns(pod_netns, "ip", "route", "add", "default", "via", net.node_ip)


async def install_iptables(pod_netns: str, rules: str) -> None:
    await in_netns(pod_netns, "iptables-restore", "--noflush", stdin=rules)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread in another network namespace: sockets made inside stay there."""
    with open("/proc/thread-self/ns/net") as home, open(netns_path(name)) as target:
        if _libc.setns(target.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "could not return to the daemon's network namespace")


def socket_in(name: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    with entered(name):
        return socket.socket(family, kind)


async def tcp_probe(netns: str, ip: str, port: int, timeout: float = 0.5) -> bool:
    """Can the node open a TCP connection to ip:port inside this cluster?"""
    sock = socket_in(netns)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (ip, port)), timeout)
        return True
    except (OSError, TimeoutError):
        return False
    finally:
        sock.close()


async def http_get(netns: str, ip: str, port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """A minimal HTTP/1.1 GET from the node, for sidecar readiness and stats."""
    sock = socket_in(netns)
    sock.setblocking(False)
    try:
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), timeout)
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        return status, body
    except (OSError, TimeoutError, ValueError, IndexError):
        return 0, b""
    finally:
        sock.close()
