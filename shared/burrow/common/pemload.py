"""Load a certificate chain and key from PEM bytes without writing the key to a disk.

``SSLContext.load_cert_chain`` takes only file names: a memfd (Linux) stands in for the file,
else a 0600 temporary file. Sans-IO in the sense of shared/: no ssl import here, the context is
the caller's.
"""

from __future__ import annotations

import os
import tempfile
from typing import Protocol


class LoadsCertChain(Protocol):
    """What this needs of an ``ssl.SSLContext``."""

    def load_cert_chain(self, certfile: str) -> None:
        """Load the certificate chain (and key) from ``certfile``."""


def load_pem_chain(ctx: LoadsCertChain, cert_pem: bytes, key_pem: bytes) -> None:
    """``ctx.load_cert_chain`` from PEM text; raises what it raises (ssl.SSLError, OSError)."""
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
