"""Checks of entry-point certificates that need ``ssl`` (so cannot live in sans-IO shared/).

Run right after planning, at start and on every SIGHUP: a key that does not match its
certificate is a ConfigError naming both files, the config key and the fix, and a reload
then keeps the running certificates. The same load the workers do (PEM text through a memory
file, burrow.net.tlsctx in the worker) is done here on the bytes the plan carries.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from burrow.common.pemload import load_pem_chain
from burrow.config.errors import ConfigError
from burrow.config.plan_types import EntryCert, RelayServerPlan, ServicePlan


def check_entry_certs(plans: Sequence[ServicePlan]) -> None:
    """Raise ConfigError for the first certificate whose key does not load with it."""
    for plan in plans:
        if isinstance(plan, RelayServerPlan):
            for cert in plan.entry_tls:
                _check(cert)


def _check(cert: EntryCert) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        load_pem_chain(ctx, cert.cert_pem, cert.key_pem)
    except ssl.SSLError as exc:
        text = str(exc)
        if "KEY_VALUES_MISMATCH" in text or "key values mismatch" in text:
            raise ConfigError(
                f"key {cert.key_file!r} does not match certificate {cert.source!r}",
                fix="give the key the certificate was issued for",
                key=cert.key,
            ) from None
        raise ConfigError(
            f"certificate {cert.source!r} with key {cert.key_file!r} does not load: "
            f"{exc.reason or text}",
            fix="give PEM files: the certificate chain (leaf first) and its unencrypted key",
            key=cert.key,
        ) from None
