"""The sidecar agent's client of the identity service: send a CSR and a token, get a certificate.

Imports only ssl, socket, json and http.client (no cryptography, no other
isthmus module), because it runs in every pod and memory per pod matters.
The server is authenticated by the trust bundle (anchors) and by its SPIFFE ID
in the URI SAN; hostname checking is off, as the service has no DNS name.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl

CERTIFICATES_PATH = "/v1/certificates"


class CertificateRequestError(Exception):
    """The identity service refused the request, or could not be reached or trusted.

    `status` is the HTTP status (401 token, 403 identity, 400 CSR, …) or 0 when
    no answer came back (connection, TLS or server-identity failure).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"identity service: {message}" + (f" (HTTP {status})" if status else ""))
        self.status = status
        self.message = message


class IssuedCertificate:
    """What the identity service returned: the chain (leaf first) and when it expires."""

    __slots__ = ("certificate_chain", "expires_at", "not_before", "spiffe_id", "trust_bundle")

    def __init__(self, body: dict[str, object]) -> None:
        fields = {name: body.get(name) for name in self.__slots__}
        missing = [name for name, value in fields.items() if not isinstance(value, str)]
        if missing:
            raise CertificateRequestError(0, f"answer lacks {', '.join(missing)}")
        self.certificate_chain = str(fields["certificate_chain"])
        self.expires_at = str(fields["expires_at"])
        """RFC 3339 UTC, e.g. 2030-01-01T00:00:00Z."""
        self.not_before = str(fields["not_before"])
        self.spiffe_id = str(fields["spiffe_id"])
        self.trust_bundle = str(fields["trust_bundle"])
        """The anchors the service trusts now; during anchor rotation, old and new."""


def tls_context(trust_bundle_pem: str) -> ssl.SSLContext:
    """A TLS 1.3 client context that trusts exactly the given anchors."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # the server is identified by its SPIFFE ID, checked after the handshake
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cadata=trust_bundle_pem)
    return context


def request_certificate(
    address: str | tuple[str, int],
    token: str,
    csr_pem: str,
    *,
    trust_bundle_pem: str,
    server_id: str,
    timeout: float = 10.0,
) -> IssuedCertificate:
    """POST the CSR to the identity service at `address` (a Unix socket path, or (host, port)).

    `server_id` is the SPIFFE ID the service must present (e.g.
    spiffe://cluster.local/ns/isthmus-system/sa/isthmus-identity).
    Raises CertificateRequestError.
    """
    conn = _Connection(address, tls_context(trust_bundle_pem), server_id, timeout)
    try:
        body = json.dumps({"csr": csr_pem})
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Connection": "close"}
        conn.request("POST", CERTIFICATES_PATH, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read(1024 * 1024)
        status = response.status
    except (OSError, http.client.HTTPException) as e:  # ssl.SSLError and socket.timeout are OSErrors
        raise CertificateRequestError(0, f"cannot reach {_describe(address)}: {e}") from None
    finally:
        conn.close()
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CertificateRequestError(status, f"answered with a body that is not a JSON object: {raw[:100]!r}")
    if status != 200:
        raise CertificateRequestError(status, str(answer.get("error", "no reason given")))
    return IssuedCertificate(answer)


class _Connection(http.client.HTTPConnection):
    """HTTP over TLS over a Unix socket or TCP, checking the server's SPIFFE ID before any request."""

    def __init__(self, address: str | tuple[str, int], context: ssl.SSLContext, server_id: str, timeout: float) -> None:
        super().__init__("isthmus-identity", timeout=timeout)
        self._address = address
        self._context = context
        self._server_id = server_id

    def connect(self) -> None:
        if isinstance(self._address, str):
            raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            raw.settimeout(self.timeout)
            try:
                raw.connect(self._address)
            except OSError:
                raw.close()
                raise
        else:
            raw = socket.create_connection(self._address, self.timeout)
        try:
            tls = self._context.wrap_socket(raw)
        except OSError:
            raw.close()
            raise
        presented = _uri_sans(tls.getpeercert())
        if presented != [self._server_id]:
            tls.close()
            raise CertificateRequestError(
                0,
                f"{_describe(self._address)} presented identity {', '.join(presented) or 'none'},"
                f" expected {self._server_id}; refusing to send the token",
            )
        self.sock = tls


def _uri_sans(peer: object) -> list[str]:
    if not isinstance(peer, dict):
        return []
    return [value for kind, value in peer.get("subjectAltName", ()) if kind == "URI"]


def _describe(address: str | tuple[str, int]) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"
