"""TLS for the relay port and for chain nodes: contexts, the generated certificate, error text.

The stdlib ``ssl`` module does the work, through uvloop's transports (``start_tls`` on accepted
connections, ``create_connection(ssl=...)`` when dialing). Settings follow gost
(docs/transports.md): a listener with ``caFile`` requires and verifies client certificates; a
dialer verifies the server only with ``secure`` (with ``caFile`` alone the chain is checked, not
the name); a listener without ``certFile`` uses ``cert.pem``/``key.pem`` from the working
directory when both exist, else a self-signed certificate made at start (CN ``gost.run``).
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
import tempfile
from typing import Final

from burrow.common.logfmt import event
from burrow.config.plan_transport import TransportPlan

log = logging.getLogger("burrow.tls")

SELF_SIGNED_NAME: Final = "gost.run"
_generated: tuple[str, str] | None = None
_server_contexts: dict[TransportPlan, ssl.SSLContext] = {}
_client_contexts: dict[TransportPlan, ssl.SSLContext] = {}


def _self_signed() -> tuple[str, str]:
    """Paths of a self-signed ECDSA P-256 certificate and key, made once per process."""
    global _generated
    if _generated is not None:
        return _generated
    # Imported here: only a TLS listener without a certificate needs it.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GOST"),
            x509.NameAttribute(NameOID.COMMON_NAME, SELF_SIGNED_NAME),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SELF_SIGNED_NAME)]), False)
        .sign(key, hashes.SHA256())
    )
    folder = tempfile.mkdtemp(prefix="burrow-tls-")
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    _generated = (cert_path, key_path)
    return _generated


def _default_pair(service: str) -> tuple[str, str]:
    if os.path.isfile("cert.pem") and os.path.isfile("key.pem"):
        return "cert.pem", "key.pem"
    pair = _self_signed()
    event(log, logging.WARNING, "tls.self_signed", service=service, name=SELF_SIGNED_NAME,
          fix="set certFile and keyFile (clients cannot verify a generated certificate)")  # fmt: skip
    return pair


def server_context(t: TransportPlan, service: str = "") -> ssl.SSLContext:
    """The context of a TLS relay port (cached per plan); ssl.SSLError/OSError on bad files."""
    ctx = _server_contexts.get(t)
    if ctx is not None:
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = (t.cert_file, t.key_file) if t.cert_file else _default_pair(service)
    ctx.load_cert_chain(cert, key)
    if t.ca_file:
        ctx.load_verify_locations(cafile=t.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    _server_contexts[t] = ctx
    return ctx


def client_context(t: TransportPlan) -> ssl.SSLContext:
    """The context for dialing a TLS node (cached per plan)."""
    ctx = _client_contexts.get(t)
    if ctx is not None:
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if t.ca_file:
        ctx.load_verify_locations(cafile=t.ca_file)
    elif t.secure:
        ctx.load_default_certs()
    if t.cert_file:
        ctx.load_cert_chain(t.cert_file, t.key_file)
    # gost: InsecureSkipVerify unless secure; a CA file alone still checks the chain.
    ctx.check_hostname = t.secure
    ctx.verify_mode = ssl.CERT_REQUIRED if (t.secure or t.ca_file) else ssl.CERT_NONE
    _client_contexts[t] = ctx
    return ctx


def server_hostname(t: TransportPlan, host: str) -> str:
    """SNI and the name verified: ``serverName``, else the node's host."""
    return t.server_name or host


_NOT_TLS = frozenset(
    ["HTTP_REQUEST", "WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "UNSUPPORTED_PROTOCOL",
     "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTPS_PROXY_REQUEST"]
)  # fmt: skip
_PEER_REFUSED_US = frozenset(
    ["TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
     "SSLV3_ALERT_CERTIFICATE_EXPIRED", "TLSV1_ALERT_DECRYPT_ERROR"]
)  # fmt: skip


def describe_failure(exc: BaseException, *, server_side: bool) -> str:
    """One clear line for a failed handshake: what happened and which setting to look at."""
    if isinstance(exc, TimeoutError):
        return "TLS handshake timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        whose = "client" if server_side else "server"
        fix = "check caFile" + ("" if server_side else " and serverName")
        return f"{whose} certificate refused: {exc.verify_message} ({fix})"
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        if reason in _NOT_TLS:
            return f"not TLS: the peer sent plaintext to a TLS port ({reason})"
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE" or reason.endswith("CERTIFICATE_REQUIRED"):
            return (
                "client sent no certificate (caFile requires one)"
                if server_side
                else "server requires a client certificate (set certFile and keyFile)"
            )
        if reason in _PEER_REFUSED_US:
            whose = "client" if server_side else "server"
            return f"the {whose} refused our certificate ({reason}; check its caFile)"
        return f"TLS handshake failed ({reason or exc})"
    if isinstance(exc, ConnectionError):
        return "peer closed during the TLS handshake"
    return f"TLS handshake failed ({exc!r})"
