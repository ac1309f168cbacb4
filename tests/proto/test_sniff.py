"""HTTP and TLS sniffers: real request heads and real ClientHellos, split at every byte."""

from __future__ import annotations

import itertools
import re
import ssl
import struct
from pathlib import Path

import pytest
from helpers.vectors import streams

from burrow.proto.sniff import (
    MAX_HTTP_HEAD,
    MAX_SNIFF_BYTES,
    NEED_MORE,
    NOT_MATCHED,
    NeedMore,
    NotMatched,
    Sniffed,
    SniffResult,
    http_host_port,
    sniff,
    sniff_http,
    sniff_tls,
)

CURL = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
CURL_PORT = CURL.replace(b"Host: example.com", b"Host: example.com:8080")
LOWER = b"POST /api HTTP/1.1\r\nhost: a.example.com\r\ncontent-length: 2\r\n\r\n{}"
UPPER = b"PUT /x HTTP/1.0\r\nHOST:   b.example.com  \r\nX-Y: z\r\n\r\n"
BARE_LF = b"GET / HTTP/1.1\nHost: lf.example.com\nAccept: */*\n\n"
MIXED = b"DELETE /r HTTP/1.1\r\nHoSt:\tmixed.example.com\t\nAccept: */*\n\r\n"
IPV6 = b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"


def assert_needs_more_until(data: bytes, head_len: int, expected: SniffResult) -> None:
    """Every strict prefix of the head needs more; the head and anything longer gives expected."""
    for i in range(head_len):
        assert sniff(data[:i]) is NEED_MORE, (i, data[:i])
    for i in range(head_len, len(data) + 1):
        assert sniff(data[:i]) == expected, i


# --- HTTP -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "host"),
    [
        (CURL, "example.com"),
        (CURL_PORT, "example.com:8080"),
        (LOWER, "a.example.com"),
        (UPPER, "b.example.com"),
        (BARE_LF, "lf.example.com"),
        (MIXED, "mixed.example.com"),
        (IPV6, "[::1]:8080"),
    ],
)
def test_request_heads_at_every_split(head: bytes, host: str) -> None:
    end = re.search(rb"\n\r?\n", head)
    assert end is not None
    assert_needs_more_until(head, end.end(), Sniffed("http", host))
    assert sniff_http(head) == Sniffed("http", host)


def test_heads_written_by_real_gost(vectors_dir: Path) -> None:
    seen = 0
    for dialect in ("relay-rc10", "tunnel-v3.2.6"):
        for data in streams(vectors_dir / dialect / "a.jsonl").values():
            for m in re.finditer(rb"GET [^\r\n]* HTTP/1\.1\r\n.*?\r\n\r\n", data, re.DOTALL):
                head = m.group()
                assert_needs_more_until(head + b"body", len(head), Sniffed("http", "example.com"))
                seen += 1
    assert seen == 4


@pytest.mark.parametrize(
    "method",
    [
        b"GET",
        b"POST",
        b"PUT",
        b"DELETE",
        b"OPTIONS",
        b"PATCH",
        b"HEAD",
        b"CONNECT",
        b"TRACE",
        b"PROPFIND",
        b"M-SEARCH",
        b"X_CUSTOM.1~",
    ],
)
def test_any_token_method(method: bytes) -> None:
    head = method + b" * HTTP/1.1\r\nHost: m.example\r\n\r\n"
    assert sniff_http(head) == Sniffed("http", "m.example")
    assert sniff_http(head[: len(method) + 3]) is NEED_MORE


def test_connect_authority_form_and_http10_without_host() -> None:
    assert sniff_http(b"CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n") == Sniffed(
        "http", "a.com:443"
    )
    assert sniff_http(b"GET / HTTP/1.0\r\n\r\n") == Sniffed("http", "")
    assert sniff_http(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n") == Sniffed("http", "")
    assert sniff_http(b"GET / HTTP/1.1\r\nHost:\r\n\r\n") == Sniffed("http", "")


def test_accepts_every_buffer_type() -> None:
    for buf in (bytearray(CURL), memoryview(CURL), memoryview(bytearray(CURL))):
        assert sniff(buf) == Sniffed("http", "example.com")
        assert sniff_http(buf) == Sniffed("http", "example.com")


@pytest.mark.parametrize(
    ("data", "decided_after"),
    [
        (b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n", 4),
        (b"*1\r\n$4\r\nPING\r\n", 3),  # Redis RESP: '*' and '1' are token chars, CR is not
        (b"\x00\x01\x02\xff\xfe binary", 1),
        (b"\x16\x03\x01\x02\x00\x01", 1),  # TLS record: not HTTP
        (b"\r\nGET / HTTP/1.1\r\n", 1),
        (b" GET / HTTP/1.1\r\n", 1),
        (b"GET  / HTTP/1.1\r\n", 5),  # empty target
        (b"GET /\x01 HTTP/1.1\r\n", 6),
        (b"GET / http/1.1\r\n", 7),
        (b"GET / HTTP/2.0\r\n", 12),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 12),  # HTTP/2 prior-knowledge preface
        (b"GET / HTTP/1.1 \r\n", 15),
        (b"GET / HTTP/1.1\rX", 16),  # bare CR in the request line
    ],
)
def test_not_http_is_refused_early(data: bytes, decided_after: int) -> None:
    for i in range(decided_after):
        assert sniff_http(data[:i]) is NEED_MORE, i
    for i in range(decided_after, len(data) + 1):
        assert sniff_http(data[:i]) is NOT_MATCHED, i


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n",  # ambiguous target
        b"GET / HTTP/1.1\r\nHost: a.com\r\n folded\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\n Host: a.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a.com\r\n\r\n",  # space before the colon
        b"GET / HTTP/1.1\r\nHost a.com\r\n\r\n",  # no colon
        b"GET / HTTP/1.1\r\n: a.com\r\n\r\n",  # empty field name
        b"GET / HTTP/1.1\r\nHost: a.com\rX\r\n\r\n",  # bare CR in a value
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",  # control byte in a value
        b"GET / HTTP/1.1\r\nHost: a b.com\r\n\r\n",  # space inside the host
        b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9.com\r\n\r\n",  # not ASCII
        b"GET / HTTP/1.1\r\nHost: a.com\x7f\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\r\n",
        b"A" * 33 + b" / HTTP/1.1\r\n\r\n",  # method longer than MAX_METHOD_LEN
    ],
)
def test_malformed_heads(head: bytes) -> None:
    assert sniff_http(head) is NOT_MATCHED
    assert sniff(head) is NOT_MATCHED


def test_head_size_cap() -> None:
    start = b"GET / HTTP/1.1\r\nHost: cap.example\r\nX-Pad: "
    fits = start + b"a" * (MAX_HTTP_HEAD - len(start) - 4) + b"\r\n\r\n"
    assert len(fits) == MAX_HTTP_HEAD
    assert sniff_http(fits + b"trailing body") == Sniffed("http", "cap.example")
    too_big = start + b"a" * (MAX_HTTP_HEAD - len(start) - 3) + b"\r\n\r\n"
    assert sniff_http(too_big) is NOT_MATCHED
    # An unfinished head that already fills the cap can never finish within it.
    assert sniff_http(fits[: MAX_HTTP_HEAD - 1]) is NEED_MORE
    assert sniff_http(start + b"a" * MAX_HTTP_HEAD) is NOT_MATCHED


# --- TLS --------------------------------------------------------------------------------------


def client_hello(server_hostname: str | None, maximum: ssl.TLSVersion | None = None) -> bytes:
    """The first flight of a real OpenSSL client: one or more records holding a ClientHello."""
    if server_hostname is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context()
    if maximum is not None:
        ctx.maximum_version = maximum
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def handshake_of(records: bytes) -> bytes:
    """Concatenated fragments of a run of handshake records."""
    out, off = b"", 0
    while off < len(records):
        assert records[off] == 0x16
        (length,) = struct.unpack_from(">H", records, off + 3)
        out += records[off + 5 : off + 5 + length]
        off += 5 + length
    return out


def records(handshake: bytes, cuts: list[int], version: int = 0x0301) -> bytes:
    """Re-wrap a handshake message into one record per piece between the cut points."""
    points = [0, *cuts, len(handshake)]
    return b"".join(
        struct.pack(">BHH", 0x16, version, b - a) + handshake[a:b]
        for a, b in itertools.pairwise(points)
    )


def hello_body(extensions: bytes | None, *, suites: bytes = b"\x13\x01", sid: bytes = b"") -> bytes:
    body = b"\x03\x03" + bytes(32) + bytes([len(sid)]) + sid
    body += struct.pack(">H", len(suites)) + suites + b"\x01\x00"
    if extensions is not None:
        body += struct.pack(">H", len(extensions)) + extensions
    return body


def ext(ext_type: int, data: bytes) -> bytes:
    return struct.pack(">HH", ext_type, len(data)) + data


def sni(*names: tuple[int, bytes]) -> bytes:
    entries = b"".join(bytes([t]) + struct.pack(">H", len(n)) + n for t, n in names)
    return ext(0, struct.pack(">H", len(entries)) + entries)


def handshake(body: bytes, msg_type: int = 1) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


TLS13 = client_hello("a.example.com")
TLS12 = client_hello("a.example.com", ssl.TLSVersion.TLSv1_2)


@pytest.mark.parametrize("wire", [TLS13, TLS12], ids=["tls13-default", "tls12"])
def test_real_client_hello_at_every_split(wire: bytes) -> None:
    assert wire[0] == 0x16 and wire[1] == 3 and 1 <= wire[2] <= 3
    assert_needs_more_until(wire, len(wire), Sniffed("tls", "a.example.com"))
    assert sniff_tls(wire + b"\x17\x03\x03 trailing junk") == Sniffed("tls", "a.example.com")


@pytest.mark.parametrize("version", [0x0300, 0x0301, 0x0302, 0x0303, 0x0304])
def test_record_versions_accepted(version: int) -> None:
    wire = records(handshake_of(TLS13), [], version)
    assert sniff_tls(wire) == Sniffed("tls", "a.example.com")


@pytest.mark.parametrize("version", [0x0305, 0x0200, 0x0401, 0x0000])
def test_record_versions_refused(version: int) -> None:
    wire = records(handshake_of(TLS13), [], version)
    assert sniff_tls(wire[:3]) is NOT_MATCHED
    assert sniff_tls(wire) is NOT_MATCHED


@pytest.mark.parametrize("wire", [TLS13, TLS12], ids=["tls13-default", "tls12"])
def test_hello_fragmented_over_several_records(wire: bytes) -> None:
    hs = handshake_of(wire)
    third = len(hs) // 3
    for cuts in ([1], [2], [4], [5], [len(hs) - 1], [third], [third, 2 * third], [1, 2, 3]):
        fragmented = records(hs, cuts)
        assert len(fragmented) == len(hs) + 5 * (len(cuts) + 1)
        assert_needs_more_until(fragmented, len(fragmented), Sniffed("tls", "a.example.com"))


@pytest.mark.parametrize("host", [None, "127.0.0.1", "::1"])
def test_no_sni(host: str | None) -> None:
    # OpenSSL sends no server_name extension for IP literals (RFC 6066 forbids them there).
    assert sniff(client_hello(host)) == Sniffed("tls", "")


def test_crafted_hellos() -> None:
    def sniffed(body: bytes) -> SniffResult:
        return sniff_tls(records(handshake(body), []))

    good_sni = sni((0, b"x.example"))
    assert sniffed(hello_body(good_sni + ext(16, b"\x00\x03\x02h2"))) == Sniffed("tls", "x.example")
    assert sniffed(hello_body(None)) == Sniffed("tls", "")  # SSL 3.0 style, no extensions
    assert sniffed(hello_body(b"")) == Sniffed("tls", "")
    assert sniffed(hello_body(sni((7, b"other"), (0, b"y.example")))) == Sniffed("tls", "y.example")
    assert sniffed(hello_body(sni((7, b"only-other")))) == Sniffed("tls", "")
    assert sniffed(hello_body(sni((0, b"trailing.dot.")))) == Sniffed("tls", "trailing.dot.")
    assert sniffed(hello_body(good_sni, sid=bytes(32))) == Sniffed("tls", "x.example")


@pytest.mark.parametrize(
    "body",
    [
        hello_body(sni((0, b"a.com"), (0, b"b.com"))),  # two host_names
        hello_body(sni((0, b"a.com")) + sni((0, b"b.com"))),  # two server_name extensions
        hello_body(sni((0, b""))),
        hello_body(sni((0, b"a\x00.com"))),
        hello_body(sni((0, b"caf\xc3\xa9.com"))),
        hello_body(sni()),  # empty ServerNameList
        hello_body(ext(0, b"\x00\x09\x00\x00\x05a.com")),  # list length too long
        hello_body(ext(0, b"\x00\x08\x00\x00\x05a.comX")),  # junk after the list
        hello_body(sni((0, b"a.com")))[:-1],  # extension block cut short
        hello_body(sni((0, b"a.com"))) + b"\x00",  # bytes after the extensions
        hello_body(None) + b"\x00",
        hello_body(None, suites=b""),
        hello_body(None, suites=b"\x13"),
        hello_body(None, sid=bytes(33)),
        b"\x02" + hello_body(None)[1:],  # legacy_version major 2
        hello_body(None)[:20],
    ],
)
def test_malformed_hellos(body: bytes) -> None:
    assert sniff_tls(records(handshake(body), [])) is NOT_MATCHED


def test_tls_refusals_come_early() -> None:
    hs = handshake_of(TLS13)
    assert sniff_tls(b"\x17") is NOT_MATCHED
    assert sniff_tls(b"\x16\x02") is NOT_MATCHED
    assert sniff_tls(b"\x16\x03\x01\x00\x00") is NOT_MATCHED  # zero-length fragment
    assert sniff_tls(records(b"\x02" + hs[1:], [])[:6]) is NOT_MATCHED  # ServerHello type
    # A change_cipher_spec record in the middle of the hello.
    ccs = b"\x14\x03\x03\x00\x01\x01"
    split = records(hs, [10])
    assert sniff_tls(split[:15] + ccs + split[15:]) is NOT_MATCHED
    # A hello announcing more than the cap can ever hold is refused from its header.
    assert sniff_tls(b"\x16\x03\x01\x40\x00\x01\xff\xff\xff") is NOT_MATCHED


def test_sniff_cap() -> None:
    # One record of the largest length the 16-bit field allows always fits under the cap.
    pad = 65535 - 4 - len(hello_body(sni((0, b"big.example")))) - 4
    body = hello_body(sni((0, b"big.example")) + ext(21, bytes(pad)))
    wire = records(handshake(body), [])
    assert len(wire) == 5 + 65535 < MAX_SNIFF_BYTES
    assert sniff_tls(wire) == Sniffed("tls", "big.example")
    # A hello that needs several records and more than the cap is refused once the cap is full.
    base = len(hello_body(sni((0, b"big.example"))))
    hs = handshake(hello_body(sni((0, b"big.example")) + ext(21, bytes(65530 - 8 - base))))
    assert len(hs) == 65530  # its own header passes the early size check...
    wire = records(hs, list(range(5000, len(hs), 5000)))
    assert len(wire) > MAX_SNIFF_BYTES  # ...but 14 record headers push it past the cap
    assert sniff_tls(wire[: MAX_SNIFF_BYTES - 1]) is NEED_MORE
    assert sniff_tls(wire[:MAX_SNIFF_BYTES]) is NOT_MATCHED
    assert sniff_tls(wire) is NOT_MATCHED


def test_truncated_and_garbage_never_raise() -> None:
    for wire in (TLS13, TLS12, records(handshake_of(TLS13), [7, 100])):
        for i in range(len(wire)):
            assert sniff(wire[:i]) is NEED_MORE
            flipped = bytearray(wire)
            flipped[i] ^= 0xFF
            assert isinstance(sniff(flipped), (Sniffed, NeedMore, NotMatched))


def test_dispatch() -> None:
    assert sniff(b"") is NEED_MORE
    assert sniff(memoryview(b"")) is NEED_MORE
    assert sniff(TLS13) == Sniffed("tls", "a.example.com")
    assert sniff(CURL) == Sniffed("http", "example.com")
    assert sniff_http(TLS13) is NOT_MATCHED
    assert sniff_tls(CURL) is NOT_MATCHED
    assert repr(NEED_MORE) == "NEED_MORE" and repr(NOT_MATCHED) == "NOT_MATCHED"


# --- http_host_port -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("a.com:8080", ("a.com", 8080)),
        ("a.com", ("a.com", 80)),
        ("a.com:", ("a.com", 80)),
        ("[::1]:443", ("::1", 443)),
        ("[::1]", ("::1", 80)),
        ("::1", ("::1", 80)),
        ("2001:db8::1", ("2001:db8::1", 80)),
        ("10.0.0.1:0", ("10.0.0.1", 0)),
        ("x:65535", ("x", 65535)),
        ("", ("", 80)),
    ],
)
def test_http_host_port(host: str, expected: tuple[str, int]) -> None:
    assert http_host_port(host, 80) == expected


@pytest.mark.parametrize(
    "host",
    [
        "a.com:65536",
        "a.com:http",
        "a.com:-1",
        "a.com:+80",
        "a.com:\u0661",
        "[::1",
        "[::1]x",
        "[::1]:x",
    ],
)
def test_http_host_port_refuses_bad_ports(host: str) -> None:
    with pytest.raises(ValueError):
        http_host_port(host, 80)
