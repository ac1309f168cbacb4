"""The one credential check of a relay request: gost's global users and per-tunnel secrets.

Per tunnel ID the server may hold a BIND credential (tunnel clients) and a CONNECT credential
(visitors), both carried in the relay UserAuth feature (``relay://user:pass@server``). A request
for a tunnel with such a credential must match it; otherwise gost's global ``auth``/``auther``
users apply as before, unless ``tunnel_auth.required`` refuses tunnels without an entry.

Constant work, whichever the case: the supplied user/password is reduced to one keyed digest,
compared with ``hmac.compare_digest`` against the tunnel's digest or, for a tunnel without
one, a dummy of the same length, and against every global user. Digests have a fixed length,
so neither the secret's length nor whether the tunnel exists changes the work done; the caller
answers every failure with the same status (401) on the same path.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from burrow.common.ids import TunnelId
from burrow.config.plan_types import RelayServerPlan
from burrow.proto.relay import Cmd, RelayRequest


class Credentials:
    """Digests of every credential a relay server accepts (rebuilt on reload)."""

    __slots__ = ("_bind", "_connect", "_dummy", "_key", "_known", "_users", "required")

    def __init__(self, plan: RelayServerPlan) -> None:
        # A per-process key: digests in memory are not plain hashes of the passwords.
        self._key = os.urandom(32)
        self._users = [self._digest(u, p) for u, p in plan.auths]
        self._bind: dict[bytes, bytes] = {}
        self._connect: dict[bytes, bytes] = {}
        self._known: set[bytes] = set()
        for cred in plan.tunnel_auths:
            uid = TunnelId.parse(cred.tunnel).uuid
            self._known.add(uid)
            if cred.bind is not None:
                self._bind[uid] = self._digest(*cred.bind)
            if cred.connect is not None:
                self._connect[uid] = self._digest(*cred.connect)
        self._dummy = self._digest("", os.urandom(16).hex())
        self.required = plan.tunnel_auth_required

    @property
    def enabled(self) -> bool:
        """True when some request can be refused for its credentials (bans apply then)."""
        return bool(self._users or self._known or self.required)

    def _digest(self, username: str, password: str) -> bytes:
        u = username.encode(errors="surrogateescape")
        p = password.encode(errors="surrogateescape")
        # Length-prefixed: ("ab", "c") and ("a", "bc") must not collide.
        return hmac.digest(self._key, struct.pack("!I", len(u)) + u + p, hashlib.sha256)

    def check(self, req: RelayRequest) -> bool:
        """True when ``req`` may proceed as far as credentials go."""
        if not self._users and not self._known and not self.required:
            return True  # no secret configured: nothing to check, nothing to reveal
        ua = req.user_auth
        supplied = (
            self._digest(ua.username, ua.password) if ua is not None else self._digest("", "")
        )
        tid = req.tunnel_id
        uid = tid.uuid if tid is not None and not tid.is_zero else b""
        table = self._bind if req.command == Cmd.BIND else self._connect
        expected = table.get(uid)
        # Always one comparison against a tunnel secret (the dummy when there is none) and one
        # per global user: the same work for "no such tunnel" as for "wrong password".
        tunnel_ok = hmac.compare_digest(supplied, expected if expected is not None else self._dummy)
        users_ok = not self._users
        for digest in self._users:
            users_ok |= hmac.compare_digest(supplied, digest)
        if expected is not None:
            return tunnel_ok
        if uid and self.required and uid not in self._known:
            return False
        return users_ok

    def protects_bind(self, tid: TunnelId) -> bool:
        """True when BIND on ``tid`` needs its own credential (the client is authenticated)."""
        return tid.uuid in self._bind
