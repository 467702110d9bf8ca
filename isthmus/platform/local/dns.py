"""Cluster DNS for the local platform: service names resolve to their virtual IPs inside pods.

One UDP server per cluster, bound to the cluster's node address inside the
cluster's network namespace. It answers only for the cluster domain; anything
else is refused at once, since nothing routes out of the mesh.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Mapping

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from isthmus.platform.local import netns
from isthmus.platform.local.netplan import CLUSTER_DOMAIN

log = logging.getLogger(__name__)
TTL = 5


def service_names(services: Mapping[tuple[str, str], str]) -> dict[str, str]:
    """(namespace, name) -> ip  ==>  fully qualified name -> ip."""
    return {f"{name}.{ns}.svc.{CLUSTER_DOMAIN}.": ip for (ns, name), ip in services.items()}


def answer(query: bytes, names: Mapping[str, str]) -> bytes | None:
    try:
        req = DNSRecord.parse(query)
    except Exception:  # dnslib raises several types for garbage; a resolver drops such packets
        return None
    reply = req.reply()
    q = req.q
    qname = str(q.qname).lower()
    if not qname.endswith(f"{CLUSTER_DOMAIN}."):
        reply.header.rcode = RCODE.REFUSED
    elif qname not in names:
        reply.header.rcode = RCODE.NXDOMAIN
    elif q.qtype in (QTYPE.A, QTYPE.ANY):
        reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(names[qname]), ttl=TTL))
    # Other types for a known name: NOERROR with no answer, so resolvers don't wait for AAAA.
    packed: bytes = reply.pack()
    return packed


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, names: Callable[[], Mapping[str, str]]) -> None:
        self._names = names
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = answer(data, self._names())
        if out is not None and self._transport is not None:
            self._transport.sendto(out, addr)


async def serve(netns_name: str, ip: str, names: Callable[[], Mapping[str, str]]) -> asyncio.DatagramTransport:
    sock = netns.socket_in(netns_name, socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 53))
    sock.setblocking(False)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(lambda: _Protocol(names), sock=sock)
    return transport
