"""Entry-point TLS certificates as plans carry them: read and checked here, PEM text inlined.

Burrow's own handler metadata (gost has no TLS termination at a tunnel entry point)::

    entrypoint.tls.certs:          # one entry per hostname
      - hostname: app.example.com  # or *.example.com (one label, as in certificates)
        cert: /etc/burrow/tls/app.crt
        key: /etc/burrow/tls/app.key
        redirect: true             # plain HTTP for this hostname: 308 to https://
    entrypoint.tls.dir: /etc/burrow/tls   # <name>.crt|.pem with <name>.key|<name>-key.pem
    entrypoint.tls.redirect: true         # the default of ``redirect`` for every certificate
    entrypoint.tls.handshakeTimeout: 10s

In a directory ``<name>`` is the hostname, with ``_wildcard.`` (mkcert's spelling) or ``*.``
for a wildcard. The files are read at start and on every SIGHUP, so a renewed certificate is
picked up by ``kill -HUP``; a missing or unreadable file, or a key that does not match its
certificate (checked by the supervisor), is a ConfigError naming the file, the key and the fix
(a reload then keeps the running certificates).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .metadata import get_bool, get_duration
from .plan_types import EntryCert

MAX_PEM_BYTES = 1024 * 1024
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
CERTS_KEY = "entrypoint.tls.certs"
DIR_KEY = "entrypoint.tls.dir"
_CERT_SUFFIXES = (".crt", ".pem")


def entry_tls(md: Mapping[str, Any], mdw: str) -> tuple[tuple[EntryCert, ...], float]:
    """The certificates and handshake timeout of one server's entry points."""
    redirect_all = get_bool(md, "entrypoint.tls.redirect", where=mdw)
    certs: dict[str, EntryCert] = {}
    directory = md.get(DIR_KEY)
    if directory is not None:
        if not isinstance(directory, str) or not directory:
            raise ConfigError(
                f"{directory!r} is not a directory path", fix="give a path", key=f"{mdw}.{DIR_KEY}"
            )
        for cert in _from_dir(directory, f"{mdw}.{DIR_KEY}", redirect_all):
            certs[cert.hostname] = cert
    listed = md.get(CERTS_KEY, [])
    for j, item in enumerate(listed if isinstance(listed, list) else [listed]):
        cert = _from_entry(item, f"{mdw}.{CERTS_KEY}[{j}]", redirect_all)
        certs[cert.hostname] = cert  # an explicit entry beats the directory's file
    timeout = get_duration(md, "entrypoint.tls.handshakeTimeout", where=mdw)
    return tuple(certs.values()), timeout or DEFAULT_HANDSHAKE_TIMEOUT


def _hostname(name: object, key: str) -> str:
    if not isinstance(name, str) or not name.strip() or " " in name.strip():
        raise ConfigError(
            f"certificate hostname {name!r} is not a hostname",
            fix='write hostname: "app.example.com" or "*.example.com"',
            key=key,
        )
    host = name.strip().lower()
    if host.startswith("_wildcard."):
        host = "*." + host[len("_wildcard.") :]
    if "*" in host[1:] or (host.startswith("*") and not host.startswith("*.")):
        raise ConfigError(
            f"certificate hostname {name!r}: a wildcard is only allowed as the first label",
            fix='write "*.example.com"',
            key=key,
        )
    return host


def _from_entry(item: object, key: str, redirect_all: bool) -> EntryCert:
    if not isinstance(item, dict):
        raise ConfigError(
            "a certificate entry is not a table",
            fix="give hostname, cert and key (and optionally redirect)",
            key=key,
        )
    host = _hostname(item.get("hostname"), f"{key}.hostname")
    paths = []
    for field in ("cert", "key"):
        path = item.get(field)
        if not isinstance(path, str) or not path:
            raise ConfigError(
                f"certificate entry for {host!r} without {field}",
                fix=f"add {field}: <path to the PEM file>",
                key=f"{key}.{field}",
            )
        paths.append(path)
    redirect = get_bool(item, "redirect", default=redirect_all, where=key)
    return load_pair(host, paths[0], paths[1], key, redirect)


def _from_dir(directory: str, key: str, redirect: bool) -> list[EntryCert]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ConfigError(
            f"cannot read certificate directory {directory!r}: {exc}",
            fix="check the path and that the server may read it",
            key=key,
        ) from None
    present = set(names)
    out = []
    for name in names:
        stem, dot, ext = name.rpartition(".")
        if not dot or f".{ext}" not in _CERT_SUFFIXES or stem.endswith("-key"):
            continue
        keys = [k for k in (f"{stem}.key", f"{stem}-key.pem") if k in present]
        if not keys:
            if ext == "pem":
                continue  # a CA bundle or chain next to the certificates
            raise ConfigError(
                f"certificate {os.path.join(directory, name)!r} has no key file",
                fix=f"put its key next to it as {stem}.key (or {stem}-key.pem)",
                key=key,
            )
        path = os.path.join(directory, name)
        host = _hostname(stem, f"{key} ({name})")
        out.append(load_pair(host, path, os.path.join(directory, keys[0]), key, redirect))
    return out


def _read(path: str, what: str, key: str) -> bytes:
    try:
        if os.stat(path).st_size > MAX_PEM_BYTES:
            raise ConfigError(
                f"{what} file {path!r} is too large",
                fix=f"keep it under {MAX_PEM_BYTES} bytes",
                key=key,
            )
        with open(path, "rb") as f:
            return f.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read {what} file {path!r}: {exc.strerror or exc}",
            fix="check the path (relative paths start at the working directory) and permissions",
            key=key,
        ) from None


def load_pair(host: str, cert: str, key_path: str, key: str, redirect: bool) -> EntryCert:
    """Read one certificate and key as PEM text.

    shared/ is sans-IO (no ssl): that the key matches the certificate is checked by the
    supervisor right after planning (burrow.supervisor.tls_check), with this entry's ``key``.
    """
    cert_pem = _read(cert, "certificate", key)
    key_pem = _read(key_path, "key", key)
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise ConfigError(
            f"certificate file {cert!r} holds no PEM certificate",
            fix="give the PEM certificate chain (leaf first, then intermediates)",
            key=key,
        )
    if b"PRIVATE KEY-----" not in key_pem or b"ENCRYPTED" in key_pem:
        raise ConfigError(
            f"key file {key_path!r} holds no unencrypted PEM private key",
            fix=f"give its PEM key (decrypt it first: openssl pkey -in {key_path} -out new.key)",
            key=key,
        )
    return EntryCert(
        hostname=host,
        cert_pem=cert_pem,
        key_pem=key_pem,
        source=cert,
        redirect=redirect,
        key_file=key_path,
        key=key,
    )
