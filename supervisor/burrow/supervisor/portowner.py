"""Who holds a port: /proc/net/{tcp,tcp6,udp,udp6} give the socket inode, /proc/*/fd the process.

Only used to word a bind error, so every failure (no /proc, another user's fds we may not read)
just means "unknown". The table parsing is pure and tested on its own.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

# /proc/net/tcp state column: 0A = LISTEN; 07 = CLOSE, which is how a bound UDP socket shows.
TCP_LISTEN = 0x0A
UDP_BOUND = 0x07
# Enough to name the other process in one log line.
MAX_CMDLINE = 120


@dataclass(frozen=True, slots=True)
class ProcSocket:
    """One row of a /proc/net table."""

    host: str
    port: int
    remote_port: int
    state: int
    uid: int
    inode: int


@dataclass(frozen=True, slots=True)
class PortOwner:
    """A process holding a port (pid/command unknown when its fds cannot be read)."""

    address: str
    uid: int
    pid: int | None = None
    command: str = ""

    def describe(self) -> str:
        """``pid 1234 (burrow -C /etc/burrow.toml) on 0.0.0.0:8443``, or what is known."""
        who = f"pid {self.pid} ({self.command})" if self.pid is not None else f"uid {self.uid}"
        return f"{who} on {self.address}"


def _hex_host(text: str) -> str:
    raw = bytes.fromhex(text)
    # The kernel prints each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def parse_proc_net(text: str) -> list[ProcSocket]:
    """Rows of /proc/net/tcp, tcp6, udp or udp6 (the header line and bad rows are skipped)."""
    out = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        try:
            host_hex, port_hex = cols[1].split(":")
            host, port = _hex_host(host_hex), int(port_hex, 16)
            remote = int(cols[2].rpartition(":")[2], 16)
            row = ProcSocket(host, port, remote, int(cols[3], 16), int(cols[7]), int(cols[9]))
        except ValueError:
            continue
        out.append(row)
    return out


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _command(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read(MAX_CMDLINE * 2).rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    # One line: arguments may hold newlines (python -c).
    text = " ".join(" ".join(a.decode(errors="replace").split()) for a in args)
    return text if len(text) <= MAX_CMDLINE else text[:MAX_CMDLINE] + "..."


def read_table(table: str) -> list[ProcSocket]:
    """Rows of ``/proc/net/<table>`` (``tcp``, ``tcp6``, ``udp``, ``udp6``); [] if unreadable."""
    try:
        with open(f"/proc/net/{table}", encoding="ascii", errors="replace") as f:
            return parse_proc_net(f.read())
    except OSError:
        return []


def holders(inodes: set[int]) -> dict[int, int]:
    """{pid: inode} of every process with an fd on one of the socket ``inodes`` we may read."""
    links = {f"socket:[{inode}]": inode for inode in inodes}
    found: dict[int, int] = {}
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                inode = links.get(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                continue
            if inode is not None:
                found[int(pid)] = inode
                break
    return found


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _top(found: dict[int, int]) -> int:
    """The holder whose parent holds none of the sockets: the supervisor, not its workers."""
    tops = [pid for pid in found if _parent(pid) not in found]
    return min(tops or found)


def find_owner(network: str, port: int) -> PortOwner | None:
    """The process holding ``port`` (a TCP listener or a bound UDP socket), if one is found."""
    state = TCP_LISTEN if network == "tcp" else UDP_BOUND
    rows = [
        r
        for table in (network, network + "6")
        for r in read_table(table)
        if r.port == port and r.state == state and r.inode
    ]
    if not rows:
        return None
    found = holders({r.inode for r in rows})
    if not found:
        row = rows[0]
        return PortOwner(_format(row.host, row.port), row.uid)
    pid = _top(found)
    row = next(r for r in rows if r.inode == found[pid])
    return PortOwner(_format(row.host, row.port), row.uid, pid, _command(str(pid)))
