"""In-test peers for the end-to-end suite: threaded servers on 127.0.0.1 (or ::1) ephemeral ports.

Every peer binds port 0, exposes `.port`, serves until `.close()`, and uses socket timeouts so a
stuck test never wedges a thread forever.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable

import trustme

from burrow.common.hostport import join_host_port

IO_TIMEOUT = 10.0
MAX_HEAD = 65536


def _family(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal (``::1``), AF_INET otherwise."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class TcpPeer:
    """A threaded TCP server: one thread accepts, one thread per connection runs `handle(conn)`."""

    def __init__(self, handle: Callable[[socket.socket], None], host: str = "127.0.0.1") -> None:
        self._handle = handle
        self.host = host
        self._sock = socket.socket(_family(host), socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self.accepted = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>` (or `[::1]:<port>`) for config files."""
        return join_host_port(self.host, self.port)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(IO_TIMEOUT)
            threading.Thread(target=self._run_one, args=(conn,), daemon=True).start()

    def _run_one(self, conn: socket.socket) -> None:
        try:
            self._handle(conn)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def close(self) -> None:
        """Stop accepting (open connections finish on their own timeouts)."""
        self._closed.set()
        # shutdown wakes the blocked accept() on Linux; close alone may not.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)


def read_http_head(conn: socket.socket | ssl.SSLSocket) -> bytes:
    """Read up to and including the blank line ending an HTTP request head ('' on EOF)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        buf += chunk
        if len(buf) > MAX_HEAD:
            raise ValueError("request head too large")
    return buf


def header_value(head: bytes, name: str) -> str:
    """The first value of header `name` in a request head ('' when absent)."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode("latin-1")
    return ""


def _http_answer(conn: socket.socket | ssl.SSLSocket, name: str, extra: str = "") -> None:
    # Answers every request on a keep-alive connection: body names this peer and the Host seen.
    while True:
        head = read_http_head(conn)
        if not head:
            return
        length = int(header_value(head, "content-length") or 0)
        while length > 0:
            got = conn.recv(min(length, 65536))
            if not got:
                return
            length -= len(got)
        body = f"{name} host={header_value(head, 'host')}{extra}".encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            + f"Content-Length: {len(body)}\r\nX-Peer: {name}\r\n\r\n".encode()
            + body
        )


class HttpPeer(TcpPeer):
    """HTTP/1.1 server answering `<name> host=<Host header>`."""

    def __init__(self, name: str, host: str = "127.0.0.1") -> None:
        self.name = name
        super().__init__(lambda conn: _http_answer(conn, name), host)


class TlsPeer(TcpPeer):
    """HTTPS with a trustme cert for `names`; answers `<name> host=<Host> sni=<SNI>`."""

    def __init__(self, name: str, ca: trustme.CA, names: list[str]) -> None:
        self.name = name
        self._cert = ca.issue_cert(*names)
        super().__init__(self._serve)

    def _serve(self, conn: socket.socket) -> None:
        # A context per connection so the SNI callback records this connection's name only.
        seen: list[str] = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)

        def remember(_obj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
            seen.append(server_name or "")

        ctx.sni_callback = remember
        with ctx.wrap_socket(conn, server_side=True) as tls:
            _http_answer(tls, self.name, f" sni={seen[0] if seen else ''}")


def _echo(conn: socket.socket) -> None:
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


class EchoPeer(TcpPeer):
    """TCP echo server."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(_echo, host)


def _redis(conn: socket.socket) -> None:
    # Enough RESP for PING (inline or array form) and ECHO-free smoke tests.
    buf = b""
    while True:
        data = conn.recv(4096)
        if not data:
            return
        buf += data
        while b"\r\n" in buf:
            if buf.startswith(b"*"):
                # Array of bulk strings: wait until the whole command is in.
                parts = buf.split(b"\r\n")
                count = int(parts[0][1:])
                need = 1 + 2 * count
                if len(parts) <= need:
                    break
                words = [parts[2 + 2 * i] for i in range(count)]
                buf = b"\r\n".join(parts[need:])
            else:
                line, buf = buf.split(b"\r\n", 1)
                words = line.split()
            cmd = words[0].upper() if words else b""
            conn.sendall(b"+PONG\r\n" if cmd == b"PING" else b"-ERR unknown command\r\n")


class RedisPeer(TcpPeer):
    """Answers `+PONG` to PING (inline or RESP array)."""

    def __init__(self) -> None:
        super().__init__(_redis)


SSH_BANNER = b"SSH-2.0-BurrowTestPeer_1.0\r\n"


def _ssh(conn: socket.socket) -> None:
    # Server speaks first, then echoes whatever the client sends back after its banner.
    conn.sendall(SSH_BANNER)
    _echo(conn)


class SshBannerPeer(TcpPeer):
    """Sends an SSH banner immediately on accept (server-speaks-first), then echoes."""

    def __init__(self) -> None:
        super().__init__(_ssh)


class UdpPeer:
    """A UDP server running `answer(datagram) -> reply | None` in one thread."""

    def __init__(self, answer: Callable[[bytes], bytes | None], host: str = "127.0.0.1") -> None:
        self._answer = answer
        self.host = host
        self._sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        self._sock.bind((host, 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self.received = 0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>` (or `[::1]:<port>`) for config files."""
        return join_host_port(self.host, self.port)

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received += 1
            reply = self._answer(data)
            if reply is not None:
                try:
                    self._sock.sendto(reply, peer)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop the thread and close the socket."""
        self._closed.set()
        self._thread.join(timeout=5)
        self._sock.close()


class UdpEchoPeer(UdpPeer):
    """UDP echo."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(lambda data: data, host)


def dns_query(qid: int, name: str) -> bytes:
    """A minimal DNS query (RD set) for an A record."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def parse_dns_answer(data: bytes) -> tuple[int, str]:
    """(query id, dotted IPv4 of the first A answer) of a reply built by DnsPeer."""
    qid, _flags, _qd, an = struct.unpack("!HHHH", data[:8])
    if an < 1:
        raise ValueError("no answer")
    return qid, ".".join(str(b) for b in data[-4:])


class DnsPeer(UdpPeer):
    """Answers every A query with `address` (one answer, TTL 60)."""

    def __init__(self, address: str = "10.1.2.3") -> None:
        self.answer_ip = address
        super().__init__(self._reply)

    def _reply(self, data: bytes) -> bytes | None:
        if len(data) < 12:
            return None
        qid = struct.unpack("!H", data[:2])[0]
        question = data[12:]
        end = question.find(b"\x00")
        if end < 0 or len(question) < end + 5:
            return None
        question = question[: end + 5]
        header = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4)
        rr += bytes(int(p) for p in self.answer_ip.split("."))
        return header + question + rr


# ---- the visitor side: tiny blocking clients with timeouts ----


def http_request(
    address: tuple[str, int], host: str, path: str = "/", timeout: float = 5.0
) -> tuple[int, bytes]:
    """One HTTP/1.1 GET with this Host over a fresh connection: (status, body)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: burrow-e2e\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        return read_http_response(sock)


def read_http_response(sock: socket.socket | ssl.SSLSocket) -> tuple[int, bytes]:
    """Read one response (Content-Length framed, or to EOF): (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {buf!r}")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = header_value(head, "content-length")
    if length:
        want = int(length)
        while len(body) < want:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body[:want]
    while True:
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLError, ConnectionResetError):
            break
        if not chunk:
            break
        body += chunk
    return status, body


def tls_request(
    address: tuple[str, int], ca: trustme.CA, server_name: str, timeout: float = 5.0
) -> tuple[int, bytes]:
    """GET over TLS with SNI = server_name, verifying the peer's certificate against `ca`."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    raw = socket.create_connection(address, timeout=timeout)
    with raw, ctx.wrap_socket(raw, server_hostname=server_name) as tls:
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
        return read_http_response(tls)


def exchange(address: tuple[str, int], payload: bytes, want: int, timeout: float = 5.0) -> bytes:
    """Connect, send `payload`, read until `want` bytes arrived (or EOF), return them."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, want)


def recv_exactly(sock: socket.socket, want: int) -> bytes:
    """Read `want` bytes or raise ConnectionError on early EOF."""
    buf = b""
    while len(buf) < want:
        chunk = sock.recv(want - len(buf))
        if not chunk:
            raise ConnectionError(f"EOF after {len(buf)} of {want} bytes: {buf!r}")
        buf += chunk
    return buf


def udp_roundtrip(address: tuple[str, int], payload: bytes, timeout: float = 2.0) -> bytes:
    """Send one datagram from a fresh socket and return the first reply."""
    with socket.socket(_family(address[0]), socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(payload, address)
        data, _ = sock.recvfrom(65535)
        return data
