"""Listening sockets, one SO_REUSEPORT socket per worker slot per listener.

The supervisor binds them, keeps them for its whole life and never accepts on them, so a dead
worker's accept queue waits for its replacement. Port 0 binds the first socket and reuses the
port the kernel chose for the rest. Before a fixed port's group is bound, exclusive.py makes
sure no other process serves it. Host "" (``:8443``) and ``::`` bind dual-stack ``[::]`` (IPv4
too), or ``0.0.0.0`` on a host without IPv6.

Sockets handed over by systemd (LISTEN_FDS) are adopted whole (adopt.py picks which serves which
request): every worker gets the same inherited socket, because Linux refuses SO_REUSEPORT
siblings of a socket another user made (systemd binds as root, the service runs as its own
user). An adopted UDP socket goes to worker 0 only: on a shared datagram socket one peer's
datagrams would spread over several workers' sessions.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from burrow.common.hostport import join_host_port
from burrow.common.logfmt import event
from burrow.config.plan_types import LISTEN_BACKLOG

from .adopt import take_adopted
from .exclusive import address_taken, port_lock, set_dual_stack
from .portowner import find_owner

# One socket per worker per listener: this bounds fds at MAX_WORKERS * listeners.
MAX_WORKERS = 512


class ListenerError(Exception):
    """A listener could not be bound; the message names the service and address."""

    def __init__(self, message: str, **fields: str) -> None:
        super().__init__(message)
        # Extra log fields (address, owner, fix) for supervisor.bind_failed.
        self.fields = fields


@dataclass(frozen=True, slots=True)
class BindRequest:
    """What to bind: a service's listener role, network and address (host "" = all)."""

    service: str
    role: str
    network: str
    host: str
    port: int


@dataclass(slots=True)
class BoundListener:
    """One bound listener: the same address on ``len(sockets)`` REUSEPORT sockets."""

    request: BindRequest
    family: int
    host: str
    port: int
    sockets: list[socket.socket] = field(default_factory=list)
    # One inherited socket shared by every slot (systemd socket activation).
    adopted: bool = False

    @property
    def address(self) -> str:
        """The bound address as ``host:port``."""
        return join_host_port(self.host, self.port)

    @property
    def token(self) -> str:
        """This listener's token in the READY line."""
        suffix = "/udp" if self.request.network == "udp" else ""
        return f"{self.request.service}/{self.request.role}={self.address}{suffix}"

    def fd(self, index: int) -> int | None:
        """The fd of slot ``index``'s socket; None when that slot does not serve this listener."""
        if not self.adopted:
            return self.sockets[index].fileno()
        if self.request.network == "udp" and index != 0:
            return None
        return self.sockets[0].fileno()

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


@functools.cache
def ipv6_available() -> bool:
    """Whether a dual-stack ``[::]`` socket can be bound (not without IPv6: ipv6.disable=1)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            set_dual_stack(sock, "::")
            sock.bind(("::", 0))
    except OSError:
        return False
    return True


def resolve_host(host: str, network: str) -> tuple[int, str]:
    """(family, numeric host) to bind: "" means every interface of both families (``::``)."""
    host = host.strip("[]")
    if not host:
        return (socket.AF_INET6, "::") if ipv6_available() else (socket.AF_INET, "0.0.0.0")
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


def _new_socket(family: int, network: str, host: str) -> socket.socket:
    sock = socket.socket(family, _sock_type(network))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    set_dual_stack(sock, host)
    return sock


def _activate(sock: socket.socket, network: str) -> None:
    if network == "tcp":
        sock.listen(LISTEN_BACKLOG)


def _adopt(request: BindRequest, sock: socket.socket) -> BoundListener:
    name = sock.getsockname()
    if request.network == "tcp" and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        _activate(sock, request.network)
    return BoundListener(request, sock.family, str(name[0]), int(name[1]), [sock], adopted=True)


def _in_use(where: str, host: str, port: int, network: str, inherited: bool) -> ListenerError:
    address = join_host_port(host, port)
    owner = find_owner(network, port)
    held = f" (held by {owner.describe()})" if owner is not None else ""
    message = f"{where}: {address} is already in use by another process{held}"
    fix = "stop the other process, or give this service another port"
    if owner is not None and owner.pid == os.getpid() and inherited:
        message = (
            f"{where}: {address} is already in use by a socket systemd passed in "
            f"({owner.address}) that no listener adopted"
        )
        fix = "make the socket unit's ListenStream=/ListenDatagram= match this address"
    elif owner is not None and owner.pid == os.getpid():
        message = f"{where}: {address} overlaps another listener of this config ({owner.address})"
        fix = "give one of them another port"
    return ListenerError(
        f"{message}; {fix}",
        address=address,
        owner=owner.describe() if owner is not None else "unknown",
        fix=fix,
    )


def _bind_group(
    request: BindRequest, count: int, family: int, host: str, inherited: bool
) -> BoundListener:
    bound = BoundListener(request, family, host, request.port)
    where = f"service {request.service!r} ({request.role}, {request.network})"
    kind = _sock_type(request.network)
    with port_lock(request.network, request.port):
        if request.port and address_taken(family, kind, host, request.port):
            raise _in_use(where, host, request.port, request.network, inherited)
        try:
            while len(bound.sockets) < count:
                sock = _new_socket(family, request.network, host)
                bound.sockets.append(sock)
                sock.bind((host, bound.port))
                # Port 0: the first bind picks the port, the rest of the set must share it.
                bound.port = sock.getsockname()[1]
                _activate(sock, request.network)
        except OSError as exc:
            bound.close()
            if exc.errno == errno.EADDRINUSE:
                raise _in_use(where, host, bound.port, request.network, inherited) from None
            raise ListenerError(
                f"{where}: cannot bind {join_host_port(host, bound.port)}: {exc.strerror}"
            ) from None
    return bound


def _bind_one(
    request: BindRequest, count: int, adopted: list[socket.socket], inherited: bool
) -> BoundListener:
    family, host = resolve_host(request.host, request.network)
    sock = take_adopted(adopted, family, _sock_type(request.network), host, request.port)
    if sock is not None:
        return _adopt(request, sock)
    return _bind_group(request, count, family, host, inherited)


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
            done.append(_bind_one(request, count, adopted, bool(inherited_fds)))
    except BaseException:
        for listener in done:
            listener.close()
        for sock in adopted:
            sock.close()
        raise
    unused = [sock.detach() for sock in adopted]
    return done, unused


def bind_or_report(
    requests: Sequence[BindRequest], count: int, inherited_fds: Sequence[int], log: logging.Logger
) -> list[BoundListener] | None:
    """:func:`bind_listeners`, logging why not (None) and closing inherited fds nobody adopts."""
    try:
        listeners, unused = bind_listeners(requests, count, inherited_fds)
    except ListenerError as exc:
        event(log, logging.ERROR, "supervisor.bind_failed", error=str(exc), **exc.fields)
        return None
    for fd in unused:
        event(log, logging.WARNING, "systemd.unused_socket", fd=fd, action="closed")
        os.close(fd)
    return listeners


WILDCARDS = ("", "0.0.0.0", "::")


def resolve_address(
    host: str, port: int, role: str, listeners: Sequence[BoundListener]
) -> str | None:
    """``host:port``, port 0 taken from this process's ``role`` listener on ``host``.

    For addresses other processes dial (a cluster node's advertise): port 0 in the config means
    "whatever my listener bound". None when no such listener exists.
    """
    if port:
        return join_host_port(host, port)
    exact = [b for b in listeners if b.request.role == role and b.request.host == host]
    wild = [b for b in listeners if b.request.role == role and b.request.host in WILDCARDS]
    found = exact or wild
    return join_host_port(host, found[0].port) if found else None
