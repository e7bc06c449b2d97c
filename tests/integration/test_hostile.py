"""Hostile and broken clients against one greeterd under systemd-socket-activate.

Each case does something a client can do, asserts exactly what that client receives, then
asserts that the daemon still greets a normal client and that its open fds and memory are
back at their baseline: no case may leak or grow the server.
"""

from __future__ import annotations

import array
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greeterd import protocol
from greeterd.protocol import ProtocolError
from greeterd.server import READ_TIMEOUT
from tests.support import (
    HELLO,
    Activated,
    connect,
    error_line,
    greet,
    open_fds,
    read_reply,
    remove_tree,
    rss_kib,
    short_temp_dir,
    wait_for,
)

#: Memory a case may leave behind: allocator slack, not a buffer per client.
RSS_SLACK_KIB = 512


EMPTY = error_line(protocol.EMPTY)
INVALID = error_line(protocol.INVALID_UTF8)
CONTROL = error_line(protocol.CONTROL_CHARACTER)
TOO_LONG = error_line(protocol.TOO_LONG)
TIMED_OUT = error_line(protocol.TIMED_OUT)


@dataclass
class Baseline:
    fds: int
    rss_kib: int


class Daemon:
    """One greeterd for the whole module, with its pid and its baseline resource use."""

    def __init__(self) -> None:
        self.directory = short_temp_dir()
        self.activated = Activated(self.directory)
        self.path = self.activated.path
        assert greet(self.path) == HELLO
        self.pid = self.activated.process.pid  # systemd-socket-activate exec()s greeterd
        for _ in range(50):  # warm up the refusal and greeting paths
            greet(self.path)
            send(self.path, b"\n", half_close=True)
        self.baseline = Baseline(open_fds(self.pid), rss_kib(self.pid))

    def assert_healthy(self) -> None:
        assert greet(self.path) == HELLO, "the daemon no longer greets"
        wait_for(
            lambda: open_fds(self.pid) == self.baseline.fds,
            timeout=protocol_timeout(),
            what=f"fds back to {self.baseline.fds} (now {open_fds(self.pid)})",
        )
        rss = rss_kib(self.pid)
        assert rss <= self.baseline.rss_kib + RSS_SLACK_KIB, (
            f"RSS {rss} KiB, baseline {self.baseline}"
        )

    def close(self) -> None:
        self.activated.stop()
        remove_tree(self.directory)


def protocol_timeout() -> float:
    return READ_TIMEOUT + 5


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    running = Daemon()
    yield running
    running.close()


# -- client behaviours ------------------------------------------------------------------------


def send(
    path: Path,
    data: bytes,
    *,
    chunks: int | None = None,
    pause: float = 0.0,
    half_close: bool = False,
) -> bytes:
    """Send ``data`` (in pieces of ``chunks`` bytes, ``pause`` apart) and return the reply."""
    with connect(path, timeout=30) as sock:
        step = chunks or max(len(data), 1)
        try:
            for start in range(0, len(data), step):
                sock.sendall(data[start : start + step])
                if pause:
                    time.sleep(pause)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed: its reply is still readable
        return read_reply(sock)


def flood(path: Path, size: int) -> bytes:
    """Stream ``size`` bytes without a newline; return what the server said meanwhile."""
    block = b"x" * 65536
    with connect(path, timeout=30) as sock:
        sent = 0
        try:
            while sent < size:
                sent += sock.send(block[: min(len(block), size - sent)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_reply(sock)


def reset_after(path: Path, data: bytes) -> bytes:
    """Send ``data`` then reset the connection (SO_LINGER 0): the server must shrug it off."""
    sock = connect(path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if data:
        sock.sendall(data)
    sock.close()
    return b""


def never_reads(path: Path, data: bytes) -> bytes:
    """Send a name and keep the connection open without reading: the server must not wait."""
    with connect(path) as sock:
        sock.sendall(data)
        time.sleep(0.3)
        sock.setblocking(False)
        return sock.recv(4096)  # already there: the server did not wait for us to read


def silent(path: Path, data: bytes = b"") -> bytes:
    """Send ``data`` (maybe nothing) and then nothing more: the read deadline ends it."""
    with connect(path, timeout=30) as sock:
        if data:
            sock.sendall(data)
        return read_reply(sock)


def connect_and_close(path: Path) -> bytes:
    connect(path).close()
    return b""


def interleaved(path: Path) -> bytes:
    """Two clients send their names a byte at a time, alternating: each gets its own."""
    first, second = connect(path), connect(path)
    with first, second:
        for a, b in zip(b"Ada\n", b"Bob\n", strict=True):
            first.send(bytes([a]))
            second.send(bytes([b]))
            time.sleep(0.01)
        return read_reply(first) + read_reply(second)


@dataclass
class Case:
    name: str
    act: Callable[[Path], bytes]
    expected: bytes


def case(name: str, data: bytes, expected: bytes, **options: object) -> Case:
    return Case(name, lambda path: send(path, data, **options), expected)  # type: ignore[arg-type]


MAX = protocol.MAX_NAME_BYTES
CASES = [
    case("LF", b"Zo\xc3\xab\n", HELLO),
    case("CRLF", b"Zo\xc3\xab\r\n", HELLO),
    case("no terminator and half-close", b"Zo\xc3\xab", HELLO, half_close=True),
    case("CR only and half-close", b"Zo\xc3\xab\r", CONTROL, half_close=True),
    case("bytes one at a time", b"Zo\xc3\xab\n", HELLO, chunks=1, pause=0.005),
    case("UTF-8 character split across writes", b"Zo\xc3\xab\n", HELLO, chunks=3, pause=0.05),
    Case(
        "emoji split across writes",
        lambda p: send(p, "🦊\n".encode(), chunks=2, pause=0.05),
        "Hello, 🦊\n".encode(),
    ),
    case("surrounding spaces trimmed", b"   Zo\xc3\xab   \n", HELLO),
    case("tab around the name", b"\tZo\xc3\xab\n", CONTROL),
    case("ideographic spaces trimmed", "\u3000Zoë\u3000\n".encode(), HELLO),
    case("only spaces", b"     \n", EMPTY),
    case("empty line", b"\n", EMPTY),
    case("CRLF only", b"\r\n", EMPTY),
    case("two empty lines", b"\n\n", EMPTY),
    case("no-break spaces only", "\u00a0\u00a0\n".encode(), EMPTY),
    case("NUL", b"Zo\x00e\n", CONTROL),
    case("ESC CSI colour", b"\x1b[31mZoe\x1b[0m\n", CONTROL),
    case("OSC window title", b"\x1b]0;pwned\x07Zoe\n", CONTROL),
    case("DEL", b"Zoe\x7f\n", CONTROL),
    case("C1 CSI", "Zo\u009be\n".encode(), CONTROL),
    case("C1 NEL", "Zo\u0085e\n".encode(), CONTROL),
    case("tab inside", b"Zo\te\n", CONTROL),
    case("vertical tab", b"Zo\x0be\n", CONTROL),
    case("form feed", b"Zo\x0ce\n", CONTROL),
    case("bare CR inside", b"Zo\re\n", CONTROL),
    case("line separator", "Zo\u2028e\n".encode(), CONTROL),
    case("paragraph separator", "Zo\u2029e\n".encode(), CONTROL),
    case("bidi right-to-left override", "\u202eeoZ\n".encode(), CONTROL),
    case("bidi isolate", "\u2066Zoe\u2069\n".encode(), CONTROL),
    case("byte 0xFF", b"Zo\xffe\n", INVALID),
    case("overlong slash", b"\xc0\xaf\n", INVALID),
    case("overlong NUL", b"Zo\xc0\x80e\n", INVALID),
    case("UTF-16 surrogate", b"\xed\xa0\x80\n", INVALID),
    case("beyond U+10FFFF", b"\xf4\x90\x80\x80\n", INVALID),
    case("truncated sequence then newline", b"Zo\xc3\n", INVALID),
    case("truncated sequence then half-close", b"Zo\xc3", INVALID, half_close=True),
    case("lone continuation byte", b"\x80Zoe\n", INVALID),
    case(
        "zero-width joiner family",
        "👩\u200d👩\u200d👧\n".encode(),
        "Hello, 👩\u200d👩\u200d👧\n".encode(),
    ),
    case("right-to-left script", "שלום\n".encode(), "Hello, שלום\n".encode()),
    case("exactly the byte limit", b"a" * MAX + b"\n", b"Hello, " + b"a" * MAX + b"\n"),
    case("byte limit with CRLF", b"a" * MAX + b"\r\n", b"Hello, " + b"a" * MAX + b"\n"),
    case(
        "limit in four-byte characters",
        "🦊".encode() * (MAX // 4) + b"\n",
        b"Hello, " + "🦊".encode() * (MAX // 4) + b"\n",
    ),
    case("one byte over the limit", b"a" * (MAX + 1) + b"\n", TOO_LONG),
    Case("1 MiB without newline", lambda p: flood(p, 1 << 20), TOO_LONG),
    Case("100 MiB without newline", lambda p: flood(p, 100 << 20), TOO_LONG),
    case("first line wins", b"Ada\nBob\n", b"Hello, Ada\n"),
    Case(
        "thousands of names pipelined",
        lambda p: send(p, b"".join(b"name%d\n" % i for i in range(5000))),
        b"Hello, name0\n",
    ),
    Case("connect and close at once", connect_and_close, b""),
    Case("half-close without a byte", lambda p: send(p, b"", half_close=True), b""),
    Case("connect and send nothing", silent, TIMED_OUT),
    Case("half a name then silence", lambda p: silent(p, b"Zo"), TIMED_OUT),
    Case("CR only then silence", lambda p: silent(p, b"Zoe\r"), TIMED_OUT),
    Case("reset before sending", lambda p: reset_after(p, b""), b""),
    Case("reset mid-request", lambda p: reset_after(p, b"Zo"), b""),
    Case("reset right after the name", lambda p: reset_after(p, b"Zoe\n"), b""),
    Case("never reads the reply", lambda p: never_reads(p, b"Zoe\n"), b"Hello, Zoe\n"),
    Case("two clients interleaved", interleaved, b"Hello, Ada\nHello, Bob\n"),
]


@pytest.mark.parametrize("hostile", CASES, ids=[c.name for c in CASES])
def test_hostile_client(daemon, hostile):
    """The client gets exactly the expected bytes; the daemon greets, fds and RSS unchanged."""
    assert hostile.act(daemon.path) == hostile.expected
    daemon.assert_healthy()


def test_the_corpus_is_large_and_names_are_unique():
    """At least 40 distinct cases."""
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


def oracle(data: bytes) -> bytes:
    """What the protocol says a client sending ``data`` then half-closing must receive."""
    if not data:
        return b""
    try:
        line = protocol.find_request(data, eof=True)
        assert line is not None
        return protocol.format_reply(protocol.parse_name(line))
    except ProtocolError as error:
        return protocol.format_error(error.reason)


names = st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass"))
streams = st.one_of(
    st.binary(max_size=2 * protocol.MAX_REQUEST_BYTES),
    st.lists(
        st.one_of(names, st.sampled_from([b"\n", b"\r\n", b"\r", b"\x1b", b"\xc3", b" "])),
        max_size=12,
    ).map(b"".join),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=streams, splits=st.lists(st.integers(min_value=1, max_value=64), max_size=6))
def test_fuzzed_byte_streams_get_what_the_protocol_says(daemon, data, splits):
    """Random bytes, split across writes, then a half-close: the server's reply equals the
    protocol module's verdict on the whole stream, and the daemon stays healthy."""
    pieces, rest = [], data
    for size in splits:
        pieces.append(rest[:size])
        rest = rest[size:]
    pieces.append(rest)
    with connect(daemon.path, timeout=30) as sock:
        try:
            for piece in pieces:
                if piece:
                    sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert read_reply(sock) == oracle(data)
    assert greet(daemon.path) == HELLO


def test_a_slow_flood_does_not_grow_the_server(daemon):
    """While 100 MiB stream in without a newline, the server's RSS stays at its baseline."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(daemon.pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        assert flood(daemon.path, 100 << 20) == TOO_LONG
    finally:
        done.set()
        sampler.join()
    assert peak[0] <= daemon.baseline.rss_kib + RSS_SLACK_KIB


def test_fds_sent_to_the_datagram_socket_are_not_kept(activate):
    """A client passes 3 fds (SCM_RIGHTS) with each of 200 datagrams: every datagram is
    answered and greeterd's open fds stay at their baseline."""
    daemon = activate(flags=("--datagram",))
    passed = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", passed).tobytes())]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            client.bind("")  # an abstract address to reply to
            client.connect(str(daemon.path))
            for _ in range(2):  # the first starts greeterd; the second is answered after the
                client.send(b"Ada")  # start-up work the first did not wait for (an import)
                assert client.recv(4096) == b"Hello, Ada\n"
            baseline = open_fds(daemon.process.pid)
            for _ in range(200):
                client.sendmsg([b"Ada"], rights)
                assert client.recv(4096) == b"Hello, Ada\n"
            assert open_fds(daemon.process.pid) == baseline, "greeterd kept passed fds"
    finally:
        for fd in passed:
            os.close(fd)
