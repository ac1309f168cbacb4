"""Mutual TLS between cluster members, keyed by the cluster secret.

Every member derives the same Ed25519 key from the secret (HKDF, burrow.proto.forward) and makes
the same self-signed certificate from it (fixed name, serial and validity; Ed25519 signatures
are deterministic, so the bytes are identical on every node). Both ends present it and trust
only it: a process without the secret can neither complete a handshake as a client (no
certificate the server accepts) nor pose as a member to a dialing node. TLS 1.3 only.

Why not a CA with per-node leaves: a leaf would still be made from the secret on each node, so
it proves nothing more than this one certificate, and there would be a CA key to keep as well.
Why not TLS-PSK: Python 3.11's ssl module has no PSK callbacks.
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile

from burrow.net.tls_suites import prefer_aes128
from burrow.proto.forward import CLUSTER_NAME, cluster_key_seed

_contexts: dict[tuple[str, bool], ssl.SSLContext] = {}


def cluster_pem(secret: str) -> tuple[bytes, bytes]:
    """``(certificate PEM, private key PEM)`` of the cluster credential for ``secret``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.x509.oid import NameOID

    key = Ed25519PrivateKey.from_private_bytes(cluster_key_seed(secret))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLUSTER_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2120, 1, 1, tzinfo=datetime.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(CLUSTER_NAME)]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .sign(key, None)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def cluster_context(secret: str, *, server: bool) -> ssl.SSLContext:
    """The member's TLS context (cached): presents the cluster certificate, requires it back."""
    ctx = _contexts.get((secret, server))
    if ctx is not None:
        return ctx
    cert_pem, key_pem = cluster_pem(secret)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    # load_cert_chain takes paths only: the key lives for a moment in a private directory.
    with tempfile.TemporaryDirectory(prefix="burrow-cluster-") as folder:
        cert_path = os.path.join(folder, "cert.pem")
        key_path = os.path.join(folder, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert_path, key_path)
    ctx.load_verify_locations(cadata=cert_pem.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    prefer_aes128(ctx)
    if server:
        # Forwards never resume a session (each is one visitor's connection, dialed fresh):
        # issuing the two default tickets was 40 % of the server's handshake CPU.
        ctx.num_tickets = 0
    else:
        ctx.check_hostname = True
    _contexts[(secret, server)] = ctx
    return ctx
