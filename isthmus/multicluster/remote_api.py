"""The remote cluster's link API as a link's controller sees it: list, and watch as a stream of updates.

`RemoteApi` is the edge; `TlsRemoteApi` the real one: TLS 1.3 from the linking
cluster's node (its network namespace, so the connection leaves by the wan, as
any link would), the remote's certificate checked against the link's CA bundle
and the mesh's own anchors and its SPIFFE ID against the link's, then one request
line and JSON lines back (docs/multicluster.md, "The link API").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncGenerator, Callable
from typing import Protocol

from isthmus.multicluster.errors import RemoteUnavailable
from isthmus.multicluster.link_secret import LinkConfig
from isthmus.multicluster.remote_wire import RemoteUpdate, Snapshot, decode
from isthmus.platform.local import netns

CONNECT_TIMEOUT = 3.0
SILENCE_TIMEOUT = 30.0
"""The remote pings every 10 s; this long without a line, the watch is taken for dead."""
MAX_LINE = 64 * 1024 * 1024


class RemoteApi(Protocol):
    async def list(self) -> Snapshot:
        """Everything the remote exports now; raises RemoteUnavailable or CredentialRefused."""
        ...

    def watch(self) -> AsyncGenerator[RemoteUpdate, None]:
        """A snapshot, then each change, until the connection ends (RemoteUnavailable) or is refused."""
        ...


def client_context(ca_pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # identified by its SPIFFE ID, checked after the handshake
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cadata=ca_pem)
    return context


class TlsRemoteApi:
    def __init__(self, config: LinkConfig, node_netns: str | None, local_anchors: Callable[[], str] = str) -> None:
        """`node_netns`: where to open connections from (None: this process's own network).
        `local_anchors`: this mesh's trust bundle as it is now, trusted besides the link's CA
        bundle (read at every connection, so an anchor rotation does not cut the link off)."""
        self.config = config
        self.node_netns = node_netns
        self.local_anchors = local_anchors

    async def list(self) -> Snapshot:
        async with contextlib.aclosing(self._exchange("list")) as updates:
            async for update in updates:
                if isinstance(update, Snapshot):
                    return update
        raise self._unavailable("closed the connection without answering")

    def watch(self) -> AsyncGenerator[RemoteUpdate, None]:
        return self._exchange("watch")

    async def _exchange(self, op: str) -> AsyncGenerator[RemoteUpdate, None]:
        reader, writer = await self._connect()
        try:
            request = {"op": op, "credential": self.config.credential, "cluster": self.config.linking_cluster}
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), SILENCE_TIMEOUT)
                except TimeoutError:
                    raise self._unavailable(f"said nothing for {SILENCE_TIMEOUT:.0f}s") from None
                if not line:
                    raise self._unavailable("closed the connection")
                try:
                    msg = json.loads(line)
                except ValueError:
                    raise self._unavailable("sent a line that is not JSON") from None
                yield decode(self.config.cluster_name, msg)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError; ValueError: a line past MAX_LINE
            raise self._unavailable(f"broke off: {e}") from None
        finally:
            writer.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self.config.api_host, self.config.api_port
        loop = asyncio.get_running_loop()
        try:
            context = client_context(self.config.ca_bundle + "\n" + self.local_anchors())
        except (OSError, ssl.SSLError) as e:
            raise self._unavailable(f"cannot be trusted: the CA bundle is unusable ({e})") from None
        sock = netns.socket_in(self.node_netns) if self.node_netns else None
        try:
            if sock is not None:
                sock.setblocking(False)
                await asyncio.wait_for(loop.sock_connect(sock, (host, port)), CONNECT_TIMEOUT)
                opened = asyncio.open_connection(
                    sock=sock, ssl=context, server_hostname="", limit=MAX_LINE, ssl_handshake_timeout=CONNECT_TIMEOUT
                )
            else:
                opened = asyncio.open_connection(
                    host, port, ssl=context, server_hostname="", limit=MAX_LINE, ssl_handshake_timeout=CONNECT_TIMEOUT
                )
            reader, writer = await asyncio.wait_for(opened, CONNECT_TIMEOUT * 2)
        except (OSError, TimeoutError) as e:
            if sock is not None:
                sock.close()
            raise self._unavailable(f"cannot be reached: {e or type(e).__name__}") from None
        presented = _uri_sans(writer.get_extra_info("peercert"))
        if presented != [self.config.api_identity]:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            raise self._unavailable(
                f"presented identity {', '.join(presented) or 'none'}, expected {self.config.api_identity};"
                " the credential was not sent"
            )
        return reader, writer

    def _unavailable(self, what: str) -> RemoteUnavailable:
        c = self.config
        return RemoteUnavailable(c.cluster_name, f"the link API of {c.cluster_name} at {c.api_address} {what}")


def _uri_sans(peer: object) -> list[str]:
    if not isinstance(peer, dict):
        return []
    return [value for kind, value in peer.get("subjectAltName", ()) if kind == "URI"]
