"""TLS for the relay port and for chain nodes: contexts, the generated certificate, error text.

The stdlib ``ssl`` module does the work, through uvloop's transports (``start_tls`` on accepted
connections, ``create_connection(ssl=...)`` when dialing). Settings follow gost
(docs/transports.md): a listener with ``caFile`` requires and verifies client certificates; a
dialer verifies the server only with ``secure`` (with ``caFile`` alone the chain is checked, not
the name); a listener without ``certFile`` uses ``cert.pem``/``key.pem`` from the working
directory when both exist, else a self-signed certificate made at start (CN ``gost.run``): the
supervisor picks that one for the whole process group (burrow.supervisor.relay_cert) and the plan
carries its PEM, loaded here through a memory file.
"""

from __future__ import annotations

import ssl

from burrow.common.pemload import load_pem_chain
from burrow.config.plan_transport import TransportPlan
from burrow.net.tls_suites import prefer_aes128

_server_contexts: dict[TransportPlan, ssl.SSLContext] = {}
_client_contexts: dict[TransportPlan, ssl.SSLContext] = {}


def server_context(t: TransportPlan, service: str = "") -> ssl.SSLContext:
    """The context of a TLS relay port (cached per plan); ssl.SSLError/OSError on bad files."""
    ctx = _server_contexts.get(t)
    if ctx is not None:
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if t.cert_file:
        ctx.load_cert_chain(t.cert_file, t.key_file)
    elif t.cert_pem:
        load_pem_chain(ctx, t.cert_pem, t.key_pem)
    else:  # the supervisor inlines one for every TLS relay port without certFile
        raise ValueError(f"{service}: TLS relay port planned without a certificate")
    if t.ca_file:
        ctx.load_verify_locations(cafile=t.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
    prefer_aes128(ctx)
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
    prefer_aes128(ctx)
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
