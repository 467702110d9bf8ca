"""A real identity server on its own event loop in a background thread, for blocking clients.

The sidecar agent's client is synchronous (stdlib http.client), so tests call
it straight from the test thread while the server runs in this one.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import threading
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from isthmus.identity.client import tls_context
from isthmus.identity.http_wire import DEFAULT_LIMITS, HttpLimits
from isthmus.identity.server import OWN_CERTIFICATE_LIFETIME, IdentityServer
from isthmus.identity.service import IdentityService
from tests.identity.helpers import Mesh

T = TypeVar("T")


class Served:
    """An IdentityServer for `mesh`, listening on a Unix socket (or loopback TCP)."""

    def __init__(
        self,
        mesh: Mesh,
        socket_path: Path | None,
        *,
        tcp: bool = False,
        limits: HttpLimits = DEFAULT_LIMITS,
        own_lifetime: timedelta = OWN_CERTIFICATE_LIFETIME,
    ) -> None:
        self.mesh = mesh
        self.service = IdentityService(mesh.issuer, mesh.bundle, mesh.verifier(), mesh.clock)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="identity-server", daemon=True)
        self._thread.start()
        self.server = self.run(self._make(limits, own_lifetime))
        if tcp:
            self.address: str | tuple[str, int] = ("127.0.0.1", self.run(self.server.start_tcp("127.0.0.1", 0)))
        else:
            assert socket_path is not None
            self.run(self.server.start_unix(socket_path))
            self.address = str(socket_path)

    async def _make(self, limits: HttpLimits, own_lifetime: timedelta) -> IdentityServer:
        return IdentityServer(self.service, limits=limits, own_lifetime=own_lifetime)

    @property
    def server_id(self) -> str:
        return self.server.identity.uri

    @property
    def bundle_pem(self) -> str:
        return self.mesh.bundle.pem().decode()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    def raw_socket(self) -> socket.socket:
        if isinstance(self.address, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(self.address)
            return s
        return socket.create_connection(self.address, timeout=10)

    def tls_socket(self, bundle_pem: str | None = None) -> ssl.SSLSocket:
        return tls_context(bundle_pem or self.bundle_pem).wrap_socket(self.raw_socket())

    def http(self) -> http.client.HTTPConnection:
        """An HTTP connection over a verified TLS socket, for requests the real client would not send."""
        conn = http.client.HTTPConnection("isthmus-identity", timeout=10)
        conn.sock = self.tls_socket()
        return conn
