"""Certificates the entry point terminates TLS with, chosen by server name.

One small interface, :class:`CertStore` (``context_for``, ``redirects``, ``reload``), so another
source (ACME, say) can replace the configured files later without touching the entry point.
The configured source is the plan: the supervisor read the files (on start and on every
SIGHUP) and inlined the PEM text (burrow.config.plan_entry_tls); :meth:`reload` builds new
contexts from the new plan. Connections already running keep the context they started with,
so a renewal drops none of them.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Sequence

from burrow.common.logfmt import event
from burrow.config.plan_types import EntryCert
from burrow.net.tlsctx import context_from_pem

log = logging.getLogger("burrow.entrypoint")


def _fingerprint(cert: EntryCert) -> bytes:
    return hashlib.sha256(cert.cert_pem + b"\0" + cert.key_pem).digest()


class CertStore:
    """Server name -> SSLContext: exact hostnames first, then ``*.parent`` (one label)."""

    def __init__(self, certs: Sequence[EntryCert] = ()) -> None:
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._redirect: frozenset[str] = frozenset()
        self._cache: dict[bytes, ssl.SSLContext] = {}
        self.reload(certs)

    def __bool__(self) -> bool:
        return bool(self._contexts)

    def reload(self, certs: Sequence[EntryCert]) -> None:
        """Take a new set of certificates; unchanged ones keep their context (and sessions)."""
        contexts: dict[str, ssl.SSLContext] = {}
        cache: dict[bytes, ssl.SSLContext] = {}
        for cert in certs:
            fp = _fingerprint(cert)
            ctx = self._cache.get(fp) or cache.get(fp)
            if ctx is None:
                try:
                    # HTTP/1.1 only: request heads are rewritten as HTTP/1, never offer h2
                    ctx = context_from_pem(cert.cert_pem, cert.key_pem, ("http/1.1",))
                except (ssl.SSLError, OSError) as exc:  # checked by the supervisor: unlikely
                    event(log, logging.ERROR, "entrypoint.tls_cert", host=cert.hostname,
                          file=cert.source, error=str(exc))  # fmt: skip
                    continue
                if self._contexts:
                    event(log, logging.INFO, "entrypoint.tls_cert_loaded", host=cert.hostname,
                          file=cert.source)  # fmt: skip
            cache[fp] = ctx
            contexts[cert.hostname] = ctx
        self._contexts, self._cache = contexts, cache
        self._redirect = frozenset(c.hostname for c in certs if c.redirect)

    def _key(self, name: str, table: dict[str, ssl.SSLContext] | frozenset[str]) -> str | None:
        host = name.lower().rstrip(".")
        if host in table:
            return host
        _, dot, parent = host.partition(".")
        wild = f"*.{parent}"
        return wild if dot and parent and wild in table else None

    def context_for(self, server_name: str) -> ssl.SSLContext | None:
        """The context to terminate ``server_name`` with, or None (SNI passthrough)."""
        key = self._key(server_name, self._contexts)
        return None if key is None else self._contexts[key]

    def redirects(self, host: str) -> bool:
        """True when plain HTTP for ``host`` is answered with a 308 to https://."""
        if not self._redirect:
            return False
        key = self._key(host, self._contexts)
        return key is not None and key in self._redirect
