"""A cluster's link API: what linked clusters may read of it, served on its node's wan address.

Read-only and narrow on purpose: over TLS 1.3 (a certificate from the cluster's
issuer for `LINK_API_IDENTITY`, which clients check against the mesh's anchors),
a client that presents a valid link credential (`link_credentials`) may list or
watch the cluster's exported services and its gateway, and nothing else. Wire
format (JSON lines) in docs/multicluster.md, "The link API"; the messages come
from `link_exports`.

The listening socket is made inside the cluster's node namespace, so it exists
only on the wan (the node's firewall opens just this port; see
`netplan.node_wan_rules`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isthmus.identity.clock import Clock, SystemClock
from isthmus.identity.csr import generate_key, private_key_pem
from isthmus.identity.errors import IdentityError
from isthmus.identity.files import write_file
from isthmus.identity.load import load_issuer, load_trust_bundle
from isthmus.identity.signing import SignedCertificate, SigningPolicy, issue_certificate
from isthmus.identity.spiffe import SpiffeId
from isthmus.platform.local import link_exports, netns, rpc
from isthmus.platform.local.link_credentials import Claims, CredentialRefused, CredentialStore
from isthmus.platform.local.netplan import LINK_API_PORT
from isthmus.platform.local.paths import StatePaths

if TYPE_CHECKING:
    from isthmus.platform.local.cluster import LocalCluster

log = logging.getLogger(__name__)

LINK_API_NAMESPACE = "isthmus-system"
LINK_API_ACCOUNT = "isthmus-link-api"
OWN_LIFETIME = timedelta(hours=24)
RENEW_AT = 0.7
RENEW_CHECK_SECONDS = 60.0
REQUEST_TIMEOUT = 5.0
MAX_REQUEST = 16 * 1024
MAX_CONNECTIONS = 64
PING_SECONDS = 10.0
"""A watch with nothing to say sends a ping this often, so clients can tell a dead link from a quiet one."""


def link_api_identity(trust_domain: str) -> SpiffeId:
    return SpiffeId(trust_domain, LINK_API_NAMESPACE, LINK_API_ACCOUNT)


def link_api_address(wan_ip: str) -> str:
    return f"{wan_ip}:{LINK_API_PORT}"


@dataclass(eq=False)
class _Watch:
    claims: Claims
    writer: asyncio.StreamWriter
    revoked: asyncio.Event = field(default_factory=asyncio.Event)


class LinkApi:
    """One cluster's link API; `start()` it once the cluster's node is on the wan, `close()` before it goes."""

    def __init__(self, cluster: LocalCluster, paths: StatePaths, clock: Clock | None = None) -> None:
        self.cluster = cluster
        self.paths = paths
        self.clock: Clock = clock or SystemClock()
        self.credentials = CredentialStore(
            cluster.name, paths.link_key(cluster.name), paths.link_credentials(cluster.name)
        )
        self.identity = link_api_identity(cluster.settings.trust_domain)
        self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ssl.minimum_version = ssl.TLSVersion.TLSv1_3
        self._ssl.num_tickets = 0
        self._issued_at: datetime | None = None
        self._certificate: SignedCertificate | None = None
        self._issuer_pem = b""
        self._server: asyncio.Server | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._watches: set[_Watch] = set()
        self._connections = 0

    @property
    def address(self) -> str:
        return link_api_address(self.cluster.net.wan_ip)

    async def start(self) -> None:
        self._renew()
        sock = netns.socket_in(self.cluster.net.netns)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.cluster.net.wan_ip, LINK_API_PORT))
            sock.listen(64)
            sock.setblocking(False)
            self._server = await asyncio.start_server(
                self._serve,
                sock=sock,
                ssl=self._ssl,
                limit=MAX_REQUEST,
                ssl_handshake_timeout=REQUEST_TIMEOUT,
                ssl_shutdown_timeout=REQUEST_TIMEOUT,
            )
        except OSError:
            sock.close()
            raise
        self._renewer = asyncio.create_task(self._keep_fresh(), name=f"{self.cluster.name}/link api certificate")
        log.info("link API of %s on %s", self.cluster.name, self.address)

    async def close(self) -> None:
        if self._renewer:
            self._renewer.cancel()
        for w in list(self._watches):
            w.writer.close()
        if self._server:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def issue(self, linking_cluster: str) -> str:
        """A new credential for `linking_cluster`; the one it had stops working at once."""
        replaced = {i.id for i in self.credentials.issued() if i.cluster == linking_cluster}
        credential = self.credentials.issue(linking_cluster)
        self._end_watches(replaced)
        return credential

    def revoke(self, credential_id: str) -> bool:
        """Revoke a credential and end the watches it holds open; False if it was not valid."""
        gone = self.credentials.revoke(credential_id)
        self._end_watches({credential_id})
        if gone:
            log.info("link credential of cluster %s revoked", gone.cluster)
        return gone is not None

    def _end_watches(self, credential_ids: set[str]) -> None:
        for w in self._watches:
            if w.claims.id in credential_ids:
                w.revoked.set()

    # the certificate

    def _renew(self) -> None:
        clock = self.clock
        paths, name = self.paths, self.cluster.name
        bundle = load_trust_bundle(paths.trust_bundle, clock)
        issuer = load_issuer(
            paths.issuer_cert(name), paths.issuer_key(name), bundle, clock, trust_domain=self.identity.trust_domain
        )
        key = generate_key()
        signed = issue_certificate(issuer, key.public_key(), self.identity, clock, SigningPolicy(lifetime=OWN_LIFETIME))
        # load_cert_chain reads only files; a private directory holds them for the moment it takes.
        with tempfile.TemporaryDirectory(prefix="isthmus-link-api-") as tmp:
            chain, key_file = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
            write_file(key_file, private_key_pem(key), private=True)
            write_file(chain, signed.chain_pem(), private=False)
            self._ssl.load_cert_chain(chain, key_file)
        self._certificate, self._issued_at = signed, clock.now()
        self._issuer_pem = paths.issuer_cert(name).read_bytes()

    def _due(self) -> bool:
        if self._certificate is None or self._issued_at is None:
            return True
        renew_at = self._issued_at + (self._certificate.expires_at - self._issued_at) * RENEW_AT
        # A rotated issuer: present a chain through the new one before the old one is dropped.
        rotated = self.paths.issuer_cert(self.cluster.name).read_bytes() != self._issuer_pem
        return rotated or self.clock.now() >= renew_at

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(RENEW_CHECK_SECONDS)
            try:
                if self._due():
                    self._renew()
            except (IdentityError, OSError) as e:
                log.error("link API of %s: cannot renew its certificate, retrying: %s", self.cluster.name, e)

    # serving

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self._connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections += 1
        try:
            await self._exchange(reader, writer, peer)
        except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as e:
            log.debug("link API connection from %s ended: %r", peer, e)
        finally:
            self._connections -= 1
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Any) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("the request is not a JSON object")
        except (ValueError, asyncio.LimitOverrunError) as e:
            await _send(writer, _error("bad-request", f"bad request: {e}"))
            return
        op, credential, claimed = req.get("op"), req.get("credential"), req.get("cluster")
        if op not in ("list", "watch"):
            await _send(writer, _error("bad-request", f"unknown operation {op!r}; this API answers list and watch"))
            return
        if not isinstance(credential, str) or not isinstance(claimed, str):
            await _send(writer, _error("unauthorized", "a link credential and the linking cluster's name are required"))
            return
        try:
            claims = self.credentials.verify(credential, claimed)
        except (CredentialRefused, IdentityError) as e:
            log.warning("link API of %s refused a request from %s: %s", self.cluster.name, peer, e)
            await _send(writer, _error("unauthorized", str(e)))
            return
        gateway_ip = self.cluster.net.gateway_wan_ip
        if op == "list":
            await _send(
                writer, link_exports.snapshot(self.cluster.name, link_exports.view(self.cluster.state(), gateway_ip))
            )
            return
        await self._watch(claims, credential, writer, gateway_ip, peer)

    async def _watch(
        self, claims: Claims, credential: str, writer: asyncio.StreamWriter, gateway_ip: str, peer: Any
    ) -> None:
        watch = _Watch(claims, writer)
        self._watches.add(watch)
        states = self.cluster.watch()
        log.info("cluster %s watches the exports of %s (from %s)", claims.cluster, self.cluster.name, peer)
        try:
            current = link_exports.view(states.get_nowait(), gateway_ip)
            await _send(writer, link_exports.snapshot(self.cluster.name, current))
            revoked = asyncio.create_task(watch.revoked.wait())
            try:
                while True:
                    got = asyncio.create_task(states.get())
                    done, _ = await asyncio.wait(
                        {got, revoked}, timeout=PING_SECONDS, return_when=asyncio.FIRST_COMPLETED
                    )
                    if revoked in done:
                        got.cancel()
                        await _send(writer, _error("unauthorized", "the credential has been revoked"))
                        return
                    if got not in done:
                        got.cancel()
                        try:  # revoked by another process meanwhile (an edited list): still ends here
                            self.credentials.verify(credential, claims.cluster)
                        except (CredentialRefused, IdentityError) as e:
                            await _send(writer, _error("unauthorized", str(e)))
                            return
                        await _send(writer, {"ok": True, "type": "ping"})
                        continue
                    after = link_exports.view(got.result(), gateway_ip)
                    for message in link_exports.changes(current, after):
                        await _send(writer, message)
                    current = after
            finally:
                revoked.cancel()
        finally:
            self.cluster.unwatch(states)
            self._watches.discard(watch)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "code": code, "error": message}


async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(rpc.encode_line(message))
    await asyncio.wait_for(writer.drain(), 30)
