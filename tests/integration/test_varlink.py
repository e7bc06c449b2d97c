"""io.greeterd.Greeter under systemd-socket-activate --fdname=varlink, with raw Varlink clients:
calls, introspection, refusals in the log, and hostile clients that must leave no trace."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from greeterd import __version__, varlink
from greeterd.sessions import VARLINK_READ_BYTES
from tests.stdlib_helpers import reachable
from tests.support import (
    HELLO,
    Activated,
    connect,
    greet,
    open_fds,
    remove_tree,
    short_temp_dir,
    varlink_call,
    varlink_replies,
    wait_for,
)

GREET = "io.greeterd.Greeter.Greet"


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset), replies drained; well
    before the 5 s any deadline would take."""
    sock.settimeout(3)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass
    return True


class VarlinkDaemon:
    """greeterd with one socket named "varlink", for the whole module, and its fd baseline."""

    def __init__(self) -> None:
        self.directory = short_temp_dir()
        self.activated = Activated(self.directory, flags=("--fdname=varlink",))
        self.path = self.activated.path
        self.pid = self.activated.process.pid  # systemd-socket-activate exec()s greeterd
        with connect(self.path) as sock:
            for _ in range(2):  # the second is answered after the start-up work the first
                sock.sendall(varlink_call(GREET, name="warm"))  # did not wait for (an import)
                varlink_replies(sock, 1)
            with_one = open_fds(self.pid)  # the connection stays open after its reply
        self.fds = with_one - 1
        wait_for(lambda: open_fds(self.pid) == self.fds, what="the warm-up connection closed")

    def assert_healthy(self) -> None:
        with connect(self.path) as sock:
            sock.sendall(varlink_call(GREET, name="Zoë"))
            assert varlink_replies(sock, 1) == [{"parameters": {"greeting": "Hello, Zoë"}}]
        wait_for(
            lambda: open_fds(self.pid) == self.fds,
            what=f"fds back to {self.fds} (now {open_fds(self.pid)})",
        )


@pytest.fixture(scope="module")
def daemon() -> Iterator[VarlinkDaemon]:
    started = VarlinkDaemon()
    yield started
    started.activated.kill()
    remove_tree(started.directory)


def test_greet_get_info_and_the_idl_over_a_socket_named_varlink(daemon):
    """Greet, GetInfo and GetInterfaceDescription on one connection, answered in order."""
    with connect(daemon.path) as sock:
        sock.sendall(
            varlink_call(GREET, name="李小龍")
            + varlink_call("org.varlink.service.GetInfo")
            + varlink_call(
                "org.varlink.service.GetInterfaceDescription", interface=varlink.INTERFACE
            )
        )
        greeting, info, description = varlink_replies(sock, 3)
    assert greeting == {"parameters": {"greeting": "Hello, 李小龍"}}
    assert info["parameters"]["version"] == __version__
    assert info["parameters"]["interfaces"] == ["org.varlink.service", "io.greeterd.Greeter"]
    assert description["parameters"]["description"] == varlink.IDL


def test_a_thousand_calls_on_one_connection(daemon):
    """Calls pipelined in many writes: every one answered, in order, on one connection."""
    with connect(daemon.path) as sock:
        for batch in range(10):
            sock.sendall(b"".join(varlink_call(GREET, name=f"n{batch}-{i}") for i in range(100)))
            answered = varlink_replies(sock, 100)
            assert [r["parameters"]["greeting"] for r in answered] == [
                f"Hello, n{batch}-{i}" for i in range(100)
            ]


def test_a_refused_name_is_logged_with_the_peers_credentials(daemon):
    """InvalidName is logged like a line-protocol refusal: reason, pid, uid, the name escaped."""
    with connect(daemon.path) as sock:
        sock.sendall(varlink_call(GREET, name="evil\x1b[2J"))
        assert varlink_replies(sock, 1)[0]["error"] == varlink.INVALID_NAME
    log = daemon.activated.wait_for_log("control character in name")
    line = next(line for line in log.splitlines() if "evil" in line)
    assert "refused request from pid" in line
    assert "\x1b" not in line


def test_a_lone_surrogate_is_repeated_back_escaped_and_the_daemon_goes_on(daemon):
    """JSON can spell a lone surrogate, which UTF-8 cannot encode: the errors that repeat the
    client's string (an unknown method, an unknown interface to describe) carry it escaped,
    and greeterd keeps serving (encoding such a reply once killed it)."""
    unknown_method = "io.greeterd.Greeter.\ud800"
    with connect(daemon.path) as sock:
        sock.sendall(
            varlink_call(unknown_method)
            + varlink_call("org.varlink.service.GetInterfaceDescription", interface="\udc80")
        )
        assert varlink_replies(sock, 2) == [
            {"error": varlink.METHOD_NOT_FOUND, "parameters": {"method": unknown_method}},
            {"error": varlink.INTERFACE_NOT_FOUND, "parameters": {"interface": "\udc80"}},
        ]
    daemon.assert_healthy()


HOSTILE = {
    "connect and close": b"",
    "half a call, then close": varlink_call(GREET, name="A")[:10],
    "not JSON": b"{{{\0",
    "not UTF-8": b"\xff\xfe\xfd\0",
    "nesting 10,000 deep": b"[" * 10000 + b"]" * 10000 + b"\0",
    "a number for a call": b"42\0",
    "1 MiB without a NUL": b"x" * (1 << 20),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_varlink_client_is_closed_and_leaves_nothing(daemon, data):
    """Whatever the client sends before it leaves, the server closes the connection at once
    (not at a deadline), and afterwards greets and holds no more fds than before."""
    with connect(daemon.path) as sock:
        with contextlib.suppress(OSError):  # the server may close while we still write
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # and the client leaves: nothing more is coming
        assert closed_by_server(sock)
    daemon.assert_healthy()


def test_a_client_that_calls_but_never_reads_is_closed(daemon):
    """Pipelining calls without reading a reply fills the connection; greeterd keeps no queue of
    replies and closes it instead, and the daemon goes on."""
    with connect(daemon.path) as sock:
        sock.settimeout(10)  # a server that stopped reading without closing: TimeoutError
        # 200,000 calls in one go: far more than the two sockets' buffers hold.
        flood = b"".join(varlink_call(GREET, name=f"n{i}") for i in range(200_000))
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            sock.sendall(flood)
    daemon.assert_healthy()


def test_a_stream_and_a_varlink_socket_are_served_by_one_greeterd(activate, sock_dir):
    """greeter.socket's stream socket and greeter-varlink.socket's, named stream:varlink, are
    both served by one process, each in its own protocol."""
    line = sock_dir / "line.sock"
    outer = ("systemd-socket-activate", "-l", str(line))
    daemon = activate(wrapper=outer, flags=("--fdname=stream:varlink",), wait=False)
    wait_for(lambda: reachable(line), what="the line socket")
    assert greet(line) == HELLO
    with connect(daemon.path) as sock:
        sock.sendall(varlink_call(GREET, name="Ada"))
        assert varlink_replies(sock, 1) == [{"parameters": {"greeting": "Hello, Ada"}}]
    assert daemon.stop() == 0, daemon.log


def padded_call(size: int) -> bytes:
    """A whole call of exactly ``size`` bytes, NUL included: a Greet with an unknown
    parameter, so its reply is InvalidParameter and the connection goes on."""
    bare = varlink_call(GREET, name="A", padding="")
    return varlink_call(GREET, name="A", padding="x" * (size - len(bare)))


def test_sigterm_answers_the_calls_sent_before_it():
    """Calls that arrived whole before SIGTERM are answered before greeterd closes their
    connections: the rest of what one read of VARLINK_READ_BYTES left in a socket, and a call
    on a connection accepted in the same wake-up as the signal, not read yet, after 100 idle
    connections (reads that find nothing must not use up the stop's budget). greeterd is
    stopped (SIGSTOP) while the calls are sent, so both are there when it wakes."""
    directory = short_temp_dir()
    activated = Activated(directory, flags=("--fdname=varlink",))
    idle: list[socket.socket] = []
    try:
        with connect(activated.path) as early:
            early.sendall(varlink_call(GREET, name="warm"))
            varlink_replies(early, 1)  # greeterd runs, and waits for this one's next call
            pid = activated.process.pid
            idle += [connect(activated.path) for _ in range(100)]
            wait_for(lambda: open_fds(pid) > len(idle), what="the idle connections accepted")
            os.kill(pid, signal.SIGSTOP)
            try:
                # The first call ends just inside the first read; the second straddles it.
                early.sendall(padded_call(VARLINK_READ_BYTES - 20) + varlink_call(GREET, name="B"))
                late = connect(activated.path)
                late.sendall(varlink_call(GREET, name="late"))
                os.kill(pid, signal.SIGTERM)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert varlink_replies(early, 2) == [
                {"error": varlink.INVALID_PARAMETER, "parameters": {"parameter": "padding"}},
                {"parameters": {"greeting": "Hello, B"}},
            ]
            with late:
                assert varlink_replies(late, 1) == [{"parameters": {"greeting": "Hello, late"}}]
        assert activated.process.wait(10) == 0
    finally:
        for sock in idle:
            sock.close()
        activated.kill()
        remove_tree(directory)


def test_a_stop_is_not_held_by_what_clients_queued():
    """Answering the calls sent before SIGTERM has a budget for the whole stop
    (STOP_READ_BYTES): 200 connections with their sockets full of calls (about 200 KiB each,
    40 MiB in all) still let
    greeterd exit within seconds, well inside the unit's TimeoutStopSec=15s; answering every
    queued call took about 10 s here."""
    directory = short_temp_dir()
    activated = Activated(directory, flags=("--fdname=varlink",))
    connections: list[socket.socket] = []
    try:
        for _ in range(200):
            connections.append(connect(activated.path))
        connections[0].sendall(varlink_call(GREET, name="warm"))
        varlink_replies(connections[0], 1)
        pid = activated.process.pid
        wait_for(lambda: open_fds(pid) >= 200, what="every connection accepted")
        os.kill(pid, signal.SIGSTOP)
        try:
            calls = varlink_call(GREET, name="A") * 4000
            for sock in connections:
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    while sock.send(calls):
                        pass
            os.kill(pid, signal.SIGTERM)
            started = time.monotonic()
        finally:
            os.kill(pid, signal.SIGCONT)
        assert activated.process.wait(15) == 0
        assert time.monotonic() - started < 5
    finally:
        for sock in connections:
            sock.close()
        activated.kill()
        remove_tree(directory)
