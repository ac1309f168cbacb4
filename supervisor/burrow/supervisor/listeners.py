"""Listening sockets, one SO_REUSEPORT socket per worker slot per listener.

The supervisor binds them, keeps them for its whole life and never accepts on them, so a dead
worker's accept queue waits for its replacement. Port 0 binds the first socket and reuses the
port the kernel chose for the rest. Sockets handed over by systemd (LISTEN_FDS) are adopted as
slot 0's socket of the listener bound to the same address.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from burrow.config.plan_types import LISTEN_BACKLOG

# One socket per worker per listener: this bounds fds at MAX_WORKERS * listeners.
MAX_WORKERS = 512


class ListenerError(Exception):
    """A listener could not be bound; the message names the service and address."""


@dataclass(frozen=True, slots=True)
class BindRequest:
    """What to bind: a service's listener role, network and address (host "" = all)."""

    service: str
    role: str
    network: str
    host: str
    port: int


def format_address(host: str, port: int) -> str:
    """``host:port`` with IPv6 hosts bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class BoundListener:
    """One bound listener: the same address on ``len(sockets)`` REUSEPORT sockets."""

    request: BindRequest
    family: int
    host: str
    port: int
    sockets: list[socket.socket] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The bound address as ``host:port``."""
        return format_address(self.host, self.port)

    @property
    def token(self) -> str:
        """This listener's token in the READY line."""
        suffix = "/udp" if self.request.network == "udp" else ""
        return f"{self.request.service}/{self.request.role}={self.address}{suffix}"

    def fd(self, index: int) -> int:
        """The fd of slot ``index``'s socket."""
        return self.sockets[index].fileno()

    def close(self) -> None:
        """Close every socket of this listener."""
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def _sock_type(network: str) -> int:
    if network == "tcp":
        return socket.SOCK_STREAM
    if network == "udp":
        return socket.SOCK_DGRAM
    raise ListenerError(f"unknown network {network!r}")


def resolve_host(host: str, network: str) -> tuple[int, str]:
    """(family, numeric host) to bind: "" means every IPv4 interface; IPv6 literals stay IPv6."""
    host = host.strip("[]")
    if not host:
        return socket.AF_INET, "0.0.0.0"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip)
    try:
        infos = socket.getaddrinfo(
            host, None, socket.AF_UNSPEC, _sock_type(network), 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenerError(f"cannot resolve listen host {host!r}: {exc}") from None
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


def _new_socket(family: int, network: str) -> socket.socket:
    sock = socket.socket(family, _sock_type(network))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _activate(sock: socket.socket, network: str) -> None:
    if network == "tcp":
        sock.listen(LISTEN_BACKLOG)


def _matches(sock: socket.socket, family: int, network: str, host: str, port: int) -> bool:
    if sock.family != family or sock.type != _sock_type(network):
        return False
    name = sock.getsockname()
    return bool(
        ipaddress.ip_address(name[0]) == ipaddress.ip_address(host) and port in (0, name[1])
    )


def _bind_one(request: BindRequest, count: int, adopted: list[socket.socket]) -> BoundListener:
    family, host = resolve_host(request.host, request.network)
    bound = BoundListener(request, family, host, request.port)
    where = f"service {request.service!r} ({request.role}, {request.network})"
    for sock in adopted:
        if _matches(sock, family, request.network, host, request.port):
            adopted.remove(sock)
            bound.port = sock.getsockname()[1]
            bound.sockets.append(sock)
            break
    try:
        while len(bound.sockets) < count:
            sock = _new_socket(family, request.network)
            bound.sockets.append(sock)
            sock.bind((host, bound.port))
            # Port 0: the first bind picks the port, the rest of the set must share it.
            bound.port = sock.getsockname()[1]
            _activate(sock, request.network)
    except OSError as exc:
        bound.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (another process holds it, or a systemd socket lacks ReusePort=yes)"
        raise ListenerError(
            f"{where}: cannot bind {format_address(host, bound.port)}: {exc.strerror}{hint}"
        ) from None
    return bound


def bind_listeners(
    requests: Sequence[BindRequest], count: int, inherited_fds: Sequence[int] = ()
) -> tuple[list[BoundListener], list[int]]:
    """Bind ``count`` sockets for every request; returns the listeners and unused inherited fds.

    On failure everything bound so far is closed and :class:`ListenerError` raised.
    """
    if not 1 <= count <= MAX_WORKERS:
        raise ListenerError(f"worker count {count} out of range 1..{MAX_WORKERS}")
    adopted = [socket.socket(fileno=fd) for fd in inherited_fds]
    done: list[BoundListener] = []
    try:
        for request in requests:
            done.append(_bind_one(request, count, adopted))
    except BaseException:
        for listener in done:
            listener.close()
        for sock in adopted:
            sock.close()
        raise
    unused = [sock.detach() for sock in adopted]
    return done, unused
