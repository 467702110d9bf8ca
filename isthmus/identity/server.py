"""The identity service's listener: TLS over a Unix socket (local platform) or TCP (Kubernetes).

The service presents a short-lived certificate for its own SPIFFE ID, issued by
the cluster issuer it signs with, and renews it at 70% of its lifetime by
reloading the key pair into the live SSL context (new handshakes get the new
certificate; open connections keep theirs). Clients do not present
certificates: a pod asking for its first certificate has none; the platform
token authenticates it instead.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from isthmus.identity.csr import generate_key, private_key_pem
from isthmus.identity.errors import IdentityError
from isthmus.identity.files import write_file
from isthmus.identity.http_wire import DEFAULT_LIMITS, HttpError, HttpLimits, HttpResponse, read_request
from isthmus.identity.service import IdentityService, service_identity
from isthmus.identity.signing import SignedCertificate, SigningPolicy, issue_certificate

OWN_CERTIFICATE_LIFETIME = timedelta(hours=24)
RENEW_AT = 0.7  # fraction of the certificate's lifetime
RENEW_CHECK_SECONDS = 60.0
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL

log = logging.getLogger(__name__)


class IdentityServer:
    """Serves one IdentityService over TLS; `async with` it, start listeners, then `serve_forever()`."""

    def __init__(
        self,
        service: IdentityService,
        *,
        limits: HttpLimits = DEFAULT_LIMITS,
        own_lifetime: timedelta = OWN_CERTIFICATE_LIFETIME,
    ) -> None:
        self.service = service
        self.limits = limits
        self.identity = service_identity(service.trust_domain)
        self.renew_check_seconds = RENEW_CHECK_SECONDS
        """How often serve_forever looks at the clock while waiting to renew."""
        self._own_policy = SigningPolicy(lifetime=own_lifetime)
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl.minimum_version = ssl.TLSVersion.TLSv1_3
        # Agents connect once per certificate (hours apart) and never resume a session, so
        # session tickets would be work for both sides with no use.
        self._ssl.num_tickets = 0
        self.certificate = self.renew_certificate()
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> IdentityServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    def renew_certificate(self) -> SignedCertificate:
        """Issue a new key and certificate for this service and use them for new handshakes."""
        key = generate_key()
        signed = issue_certificate(
            self.service.issuer, key.public_key(), self.identity, self.service.clock, self._own_policy
        )
        # load_cert_chain reads only files; a private 0700 directory holds them for the moment it takes.
        with tempfile.TemporaryDirectory(prefix="isthmus-identity-") as tmp:
            chain, key_file = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
            write_file(key_file, private_key_pem(key), private=True)
            write_file(chain, signed.chain_pem(), private=False)
            self._ssl.load_cert_chain(chain, key_file)
        self.certificate, self._issued_at = signed, self.service.clock.now()
        log.info("serving as %s, certificate serial %x until %s", self.identity, signed.serial, signed.expires_at)
        return signed

    async def start_unix(self, path: Path) -> None:
        if len(str(path).encode()) > _UNIX_PATH_MAX:
            raise IdentityError(
                str(path), f"socket path is longer than {_UNIX_PATH_MAX} bytes; use a shorter directory"
            )
        server = await asyncio.start_unix_server(
            self._serve_connection,
            path,
            ssl=self._ssl,
            limit=self.limits.max_head_bytes,
            ssl_handshake_timeout=self.limits.handshake_timeout,
            ssl_shutdown_timeout=self.limits.handshake_timeout,
        )
        self._servers.append(server)

    async def start_tcp(self, host: str, port: int) -> int:
        """Listen on host:port (port 0 picks one); returns the bound port."""
        server = await asyncio.start_server(
            self._serve_connection,
            host,
            port,
            ssl=self._ssl,
            limit=self.limits.max_head_bytes,
            ssl_handshake_timeout=self.limits.handshake_timeout,
            ssl_shutdown_timeout=self.limits.handshake_timeout,
        )
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        """Keep the service's own certificate fresh until cancelled; the listeners run meanwhile."""
        while True:
            # Sleep in slices and look at the clock again, so that a wall-clock jump (a laptop
            # resuming, a test's clock) cannot leave an expired certificate in service.
            wait = (self.renew_at - self.service.clock.now()).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, self.renew_check_seconds))
                continue
            try:
                self.renew_certificate()
            except IdentityError as e:
                # Keep serving with the current certificate; retrying beats going dark.
                log.error("cannot renew the identity service's certificate, retrying in a minute: %s", e)
                await asyncio.sleep(60)

    @property
    def renew_at(self) -> datetime:
        """When to renew: 70% into the certificate's life, counted from when it was issued (not its backdated notBefore)."""
        return self._issued_at + (self.certificate.expires_at - self._issued_at) * RENEW_AT

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._connections):
            writer.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.limits.max_connections:
            writer.close()
            return
        self._connections.add(writer)
        try:
            await self._exchange(reader, writer)
        except (ConnectionError, ssl.SSLError, TimeoutError) as e:
            log.debug("identity connection ended: %r", e)
        finally:
            self._connections.discard(writer)
            # Not awaiting wait_closed(): the TLS shutdown finishes in the transport (bounded by
            # ssl_shutdown_timeout), and a handler parked there would only pin memory.
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(self.limits.max_requests_per_connection):
            try:
                request = await read_request(reader, self.limits, first=n == 0)
            except HttpError as e:
                self.service.stats.refused[e.status] += 1
                await _send(writer, e.response(), keep_alive=False)
                return
            if request is None:
                return
            # Signing takes well under a millisecond, so it runs here rather than in a thread.
            try:
                response = self.service.handle(request)
            except Exception:
                # A bug must cost one request, not the service every pod of the cluster depends on.
                log.exception("identity service failed on %s %s", request.method, request.target)
                self.service.stats.refused[500] += 1
                await _send(writer, HttpResponse(500, {"error": "internal error; see the identity service log"}), False)
                return
            keep_alive = request.keep_alive and n + 1 < self.limits.max_requests_per_connection
            await _send(writer, response, keep_alive)
            if not keep_alive:
                return


async def _send(writer: asyncio.StreamWriter, response: HttpResponse, keep_alive: bool) -> None:
    writer.write(response.encode(keep_alive))
    await asyncio.wait_for(writer.drain(), 10)
