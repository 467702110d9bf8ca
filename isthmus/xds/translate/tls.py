"""Mutual TLS between sidecars: the TLS contexts both directions use, and which endpoints get them.

Certificates never pass through the control plane. The sidecar agent writes them as
SDS files into the pod's identity directory, and Envoy watches that directory, so a
renewal needs neither a config push nor a restart. The control plane only says
which identity each endpoint must present; the client checks it on every connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import struct_pb2

from isthmus.model.mesh import (
    TRUST_BUNDLE_SECRET,
    TRUST_BUNDLE_SECRET_FILE,
    WORKLOAD_SECRET,
    WORKLOAD_SECRET_FILE,
)
from isthmus.xds.translate.fragments import pack

TLS_SOCKET = "envoy.transport_sockets.tls"
RAW_SOCKET = "envoy.transport_sockets.raw_buffer"
# The endpoint metadata filter Envoy reads when it picks one of a cluster's transport_socket_matches.
SOCKET_MATCH_KEY = "envoy.transport_socket_match"
IDENTITY_FIELD = "identity"
PLAINTEXT_FIELD = "plaintext"
# HTTP/1.1's ALPN name: what Envoy's HTTP/1.1 pool offers when the TLS context names no ALPN.
ALPN_HTTP1 = "http/1.1"


@dataclass(frozen=True)
class MeshTls:
    """What every TLS context of one sidecar shares."""

    identity_dir: str
    """Where the agent keeps the SDS files (`isthmus.model.mesh.IDENTITY_DIR` in a pod)."""
    trust_domain: str
    """Whose SPIFFE IDs a peer may present."""

    def spiffe_prefix(self) -> str:
        return f"spiffe://{self.trust_domain}/"


_TLS13 = common_pb2.TlsParameters(
    tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
    tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3,
)


def _file_source(identity_dir: str, file: str) -> config_source_pb2.ConfigSource:
    # Envoy re-reads `path` when a file is renamed into the watched directory: the agent's
    # write-then-rename is atomic, so Envoy never sees half a certificate.
    return config_source_pb2.ConfigSource(
        path_config_source=config_source_pb2.PathConfigSource(
            path=f"{identity_dir.rstrip('/')}/{file}",
            watched_directory=base_pb2.WatchedDirectory(path=identity_dir),
        ),
        resource_api_version=config_source_pb2.V3,
    )


def _secret(mesh: MeshTls, name: str, file: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=_file_source(mesh.identity_dir, file))


def _uri_san(matcher: string_pb2.StringMatcher) -> common_pb2.SubjectAltNameMatcher:
    return common_pb2.SubjectAltNameMatcher(san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=matcher)


def _common(mesh: MeshTls, peer: string_pb2.StringMatcher, alpn: Sequence[str]) -> tls_pb2.CommonTlsContext:
    """This workload's certificate, and a peer that chains to the mesh anchors and whose URI SAN matches."""
    return tls_pb2.CommonTlsContext(
        tls_params=_TLS13,
        tls_certificate_sds_secret_configs=[_secret(mesh, WORKLOAD_SECRET, WORKLOAD_SECRET_FILE)],
        # The anchors come from the agent's file (they change on rotation); the SAN rule from
        # the control plane. Envoy merges the two into one validation context.
        combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=common_pb2.CertificateValidationContext(
                match_typed_subject_alt_names=[_uri_san(peer)]
            ),
            validation_context_sds_secret_config=_secret(mesh, TRUST_BUNDLE_SECRET, TRUST_BUNDLE_SECRET_FILE),
        ),
        alpn_protocols=list(alpn),
    )


def _socket(name: str, config: tls_pb2.UpstreamTlsContext | tls_pb2.DownstreamTlsContext) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=name, typed_config=pack(config))


def upstream_mtls(mesh: MeshTls, peer_id: str, sni: str, alpn: Sequence[str]) -> base_pb2.TransportSocket:
    """TLS 1.3 with our certificate, to a server that must present exactly `peer_id`.

    alpn: what the connection carries; empty lets Envoy offer what each connection
    pool speaks ("h2" or "http/1.1"), for clusters that keep the client's protocol.
    """
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=_common(mesh, string_pb2.StringMatcher(exact=peer_id), alpn),
        sni=sni,
    )
    # The server never resumes sessions (see downstream_mtls), so caching them is waste.
    context.max_session_keys.value = 0
    return _socket(TLS_SOCKET, context)


def downstream_mtls(mesh: MeshTls, alpn: Sequence[str]) -> base_pb2.TransportSocket:
    """TLS 1.3 that requires a client certificate for any identity of the trust domain."""
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=_common(mesh, string_pb2.StringMatcher(prefix=mesh.spiffe_prefix()), alpn),
        # Resumption skips certificate checks, so a session could outlive the certificate
        # it began with; mesh connections are long-lived, so a full handshake costs little.
        disable_stateless_session_resumption=True,
        disable_stateful_session_resumption=True,
    )
    context.require_client_certificate.value = True
    return _socket(TLS_SOCKET, context)


def _plaintext() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=RAW_SOCKET, typed_config=pack(raw_buffer_pb2.RawBuffer()))


def endpoint_match_metadata(identity: str | None) -> struct_pb2.Struct:
    """What an endpoint carries under SOCKET_MATCH_KEY: its identity, or that it has no sidecar."""
    fields = struct_pb2.Struct()
    if identity is None:
        fields.update({PLAINTEXT_FIELD: True})
    else:
        fields.update({IDENTITY_FIELD: identity})
    return fields


def socket_matches(
    mesh: MeshTls, identities: Iterable[str], has_plaintext: bool, sni: str, alpn: Sequence[str]
) -> list[cluster_pb2.Cluster.TransportSocketMatch]:
    """One mTLS match per identity among a cluster's endpoints, and plaintext for those without a sidecar."""
    out = [
        cluster_pb2.Cluster.TransportSocketMatch(
            # The name ends up in stat names, where the trust domain's dots would split it.
            name=f"mtls|{identity.removeprefix(mesh.spiffe_prefix())}",
            match=endpoint_match_metadata(identity),
            transport_socket=upstream_mtls(mesh, identity, sni, alpn),
        )
        for identity in sorted(set(identities))
    ]
    if has_plaintext:
        out.append(
            cluster_pb2.Cluster.TransportSocketMatch(
                name="plaintext", match=endpoint_match_metadata(None), transport_socket=_plaintext()
            )
        )
    return out


def unmatched_endpoint_socket(mesh: MeshTls) -> base_pb2.TransportSocket:
    """For an endpoint that matches none of the cluster's identities: connect, but never succeed.

    It cannot happen with config built from one state (CDS goes out before EDS), but if
    it did, Envoy's usual default would be plaintext to what may be a meshed pod. A
    SAN no certificate carries fails the handshake instead, visibly (ssl.fail_verify_san).
    """
    return upstream_mtls(mesh, f"{mesh.spiffe_prefix()}isthmus/endpoint-without-identity", "", ())
