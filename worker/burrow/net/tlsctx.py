"""Server SSLContexts from PEM text (the plan carries certificates inline, not as paths)."""

from __future__ import annotations

import ssl

from burrow.common.pemload import load_pem_chain
from burrow.net.tls_suites import prefer_aes128


def context_from_pem(cert_pem: bytes, key_pem: bytes, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A server SSLContext for one certificate chain and its key, given as PEM text.

    ``load_cert_chain`` reads only files: the PEM goes to an anonymous memory file (Linux
    memfd: never on disk, gone when closed), or where there is none to a private temporary
    file removed at once.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    load_pem_chain(ctx, cert_pem, key_pem)
    prefer_aes128(ctx)
    return ctx
