"""Server SSLContexts from PEM text (the plan carries certificates inline, not as paths)."""

from __future__ import annotations

import os
import ssl
import tempfile


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
    return ctx


def load_pem_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """``ctx.load_cert_chain`` from PEM text; raises ssl.SSLError as it does."""
    data = cert_pem + b"\n" + key_pem
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd = memfd("burrow-cert", getattr(os, "MFD_CLOEXEC", 0))
        try:
            with os.fdopen(os.dup(fd), "wb") as f:
                f.write(data)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile(prefix="burrow-cert-") as tmp:  # mode 0600
        tmp.write(data)
        tmp.flush()
        ctx.load_cert_chain(tmp.name)
