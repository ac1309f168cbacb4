"""Transport of a relay port or a chain node: tcp, tls, ws or wss, with gost's parameter names.

gost spells them: listener/dialer ``type`` (``relay+tls://`` on the command line), a ``tls``
section with ``certFile``, ``keyFile``, ``caFile`` (and, dialing, ``secure``, ``serverName``),
and WebSocket metadata ``path`` (default ``/ws``) and, dialing, ``host`` (default: the node
address), each also with a ``ws.`` prefix. See docs/transports.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from .errors import ConfigError
from .metadata import get_duration, get_str
from .schema import TLSSettings

TransportKind = Literal["tcp", "tls", "ws", "wss"]
TRANSPORTS: tuple[TransportKind, ...] = ("tcp", "tls", "ws", "wss")
DEFAULT_WS_PATH = "/ws"
# A peer that connects and never finishes the TLS handshake or the upgrade must not hold a slot.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0


class TransportPlan(msgspec.Struct, frozen=True):
    """How bytes of the relay protocol travel: plain TCP, TLS, WebSocket, or both."""

    kind: TransportKind = "tcp"
    cert_file: str = ""  # listener: empty = generated self-signed certificate
    key_file: str = ""
    ca_file: str = ""  # listener: require and verify client certificates; dialer: trust these
    secure: bool = False  # dialer: verify the server certificate and its name
    server_name: str = ""  # dialer: SNI and the name checked (default: the node's host)
    path: str = DEFAULT_WS_PATH
    host: str = ""  # dialer: Host header of the upgrade (default: the node address)
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    # Listener without certFile: the certificate the supervisor chose once for its whole
    # process group (cert.pem/key.pem of the working directory, else generated), inlined so
    # every worker serves the same one and the key never touches a disk (burrow.net.tls).
    cert_pem: bytes = b""
    key_pem: bytes = b""

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f}={getattr(self, f)!r}"
            for f in self.__struct_fields__
            if f not in ("cert_pem", "key_pem") and getattr(self, f) != getattr(TCP_TRANSPORT, f)
        )
        inline = ", cert_pem=<inline>, key_pem='********'" if self.cert_pem else ""
        return f"TransportPlan({shown}{inline})"

    @property
    def uses_tls(self) -> bool:
        """True for tls and wss."""
        return self.kind in ("tls", "wss")

    @property
    def uses_ws(self) -> bool:
        """True for ws and wss."""
        return self.kind in ("ws", "wss")


TCP_TRANSPORT = TransportPlan()


def _kind(raw: str | None, key: str) -> TransportKind:
    kind = (raw or "tcp").lower()
    for known in TRANSPORTS:
        if kind == known:
            return known
    raise ConfigError(
        f"transport {kind!r} is not supported",
        fix="use one of: " + ", ".join(TRANSPORTS),
        key=key,
    )


def _file(path: str | None, key: str) -> str:
    if not path:
        return ""
    if not os.path.isfile(path):
        raise ConfigError(
            f"file {path!r} does not exist (relative paths start at the working directory)",
            fix="give the path of a PEM file",
            key=key,
        )
    return path


def _ws(md: Mapping[str, Any], mdw: str) -> tuple[str, float]:
    path = get_str(md, "path", "ws.path", where=mdw) or DEFAULT_WS_PATH
    if not path.startswith("/"):
        raise ConfigError(f"WebSocket path {path!r} does not start with /", fix="use e.g. /ws",
                          key=f"{mdw}.path")  # fmt: skip
    timeout = get_duration(md, "handshaketimeout", "ws.handshaketimeout", where=mdw)
    return path, timeout or DEFAULT_HANDSHAKE_TIMEOUT


def listener_transport(
    type_: str | None, tls: TLSSettings | None, md: Mapping[str, Any], where: str
) -> TransportPlan:
    """The relay port's transport from ``listener.type``, ``listener.tls`` and its metadata."""
    kind = _kind(type_, f"{where}.type")
    if kind == "tcp":
        return TCP_TRANSPORT
    tls = tls or TLSSettings()
    tk = f"{where}.tls"
    if tls.keyFile and not tls.certFile:
        raise ConfigError("keyFile without certFile", fix="give certFile too", key=f"{tk}.keyFile")
    if tls.certFile and not tls.keyFile:
        raise ConfigError("certFile without keyFile", fix="give keyFile too", key=f"{tk}.certFile")
    path, timeout = _ws(md, f"{where}.metadata")
    return TransportPlan(
        kind=kind,
        cert_file=_file(tls.certFile, f"{tk}.certFile"),
        key_file=_file(tls.keyFile, f"{tk}.keyFile"),
        ca_file=_file(tls.caFile, f"{tk}.caFile"),
        path=path,
        handshake_timeout=timeout,
    )


def dialer_transport(
    type_: str | None, tls: TLSSettings | None, md: Mapping[str, Any], where: str
) -> TransportPlan:
    """A chain node's transport from ``dialer.type``, ``dialer.tls`` and the dialer metadata."""
    kind = _kind(type_, f"{where}.type")
    if kind == "tcp":
        return TCP_TRANSPORT
    tls = tls or TLSSettings()
    tk = f"{where}.tls"
    if bool(tls.certFile) != bool(tls.keyFile):
        raise ConfigError(
            "a client certificate needs both certFile and keyFile",
            fix="give both, or neither",
            key=f"{tk}.{'keyFile' if tls.certFile else 'certFile'}",
        )
    mdw = f"{where}.metadata"
    path, timeout = _ws(md, mdw)
    return TransportPlan(
        kind=kind,
        cert_file=_file(tls.certFile, f"{tk}.certFile"),
        key_file=_file(tls.keyFile, f"{tk}.keyFile"),
        ca_file=_file(tls.caFile, f"{tk}.caFile"),
        secure=tls.secure,
        server_name=tls.serverName or "",
        path=path,
        host=get_str(md, "host", "ws.host", where=mdw) or "",
        handshake_timeout=timeout,
    )
