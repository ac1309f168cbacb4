"""The certificate of TLS relay ports without ``certFile``: chosen once per process group.

gost serves ``cert.pem``/``key.pem`` from the working directory when both exist, else a
self-signed certificate made at start. Made in each worker, that would be one certificate per
worker, and a client pinning the server's certificate would be refused by every other worker.
So the supervisor decides, right after planning (at start and on SIGHUP), and inlines the PEM
text in the plan (``TransportPlan.cert_pem``/``key_pem``); workers load it through a memory
file (burrow.common.pemload) like the entry point's certificates. The generated pair is kept
for the life of the supervisor, so a reload and a restarted worker serve the same certificate.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
from collections.abc import Sequence
from typing import Final

import msgspec

from burrow.common.logfmt import event
from burrow.common.pemload import load_pem_chain
from burrow.config.errors import ConfigError
from burrow.config.plan_types import RelayServerPlan, ServicePlan

log = logging.getLogger("burrow.tls")

SELF_SIGNED_NAME: Final = "gost.run"
DEFAULT_FILES: Final = ("cert.pem", "key.pem")  # gost's defaults, in the working directory
_generated: tuple[bytes, bytes] | None = None
_warned: set[str] = set()


def generate_self_signed() -> tuple[bytes, bytes]:
    """(certificate, key) PEM of a self-signed ECDSA P-256 certificate, one year, CN gost.run."""
    # Imported here: only a TLS relay port without a certificate needs it.
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
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _group_pair() -> tuple[bytes, bytes]:
    global _generated
    if _generated is None:
        _generated = generate_self_signed()
    return _generated


def _default_files(service: str, where: str) -> tuple[bytes, bytes]:
    cert_path, key_path = DEFAULT_FILES
    try:
        with open(cert_path, "rb") as f:
            cert_pem = f.read()
        with open(key_path, "rb") as f:
            key_pem = f.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {exc.filename or cert_path!r} in the working directory "
            f"({exc.strerror}) and {service!r} has no certFile",
            fix="set certFile and keyFile, or make cert.pem and key.pem readable",
            key=f"{where}.listener.tls.certFile",
        ) from None
    try:
        load_pem_chain(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert_pem, key_pem)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"cert.pem and key.pem of the working directory {os.getcwd()!r} do not load "
            f"({exc.reason or exc}) and {service!r} has no certFile",
            fix="set certFile and keyFile, or fix or remove cert.pem and key.pem",
            key=f"{where}.listener.tls.certFile",
        ) from None
    return cert_pem, key_pem


def with_relay_certs(plans: Sequence[ServicePlan]) -> list[ServicePlan]:
    """``plans`` with the certificate inlined in every TLS relay port that has no certFile."""
    out: list[ServicePlan] = []
    for i, plan in enumerate(plans):
        t = plan.transport if isinstance(plan, RelayServerPlan) else None
        if t is None or not t.uses_tls or t.cert_file or t.cert_pem:
            out.append(plan)
            continue
        if all(os.path.isfile(p) for p in DEFAULT_FILES):
            cert_pem, key_pem = _default_files(plan.name, f"services[{i}]")
        else:
            cert_pem, key_pem = _group_pair()
            if plan.name not in _warned:
                _warned.add(plan.name)
                event(log, logging.WARNING, "tls.self_signed", service=plan.name,
                      name=SELF_SIGNED_NAME, scope="process group",
                      fix="set certFile and keyFile (clients cannot verify a generated certificate)")  # fmt: skip
        transport = msgspec.structs.replace(t, cert_pem=cert_pem, key_pem=key_pem)
        out.append(msgspec.structs.replace(plan, transport=transport))
    return out
