"""Varlink connections in the loop (sessions.py), served by a Server in a thread on real
sockets."""

import contextlib
import os
import socket
import time

import pytest

from greeterd import varlink
from tests.support import (
    HELLO,
    connect,
    listener,
    read_reply,
    varlink_call,
    varlink_listener,
    varlink_replies,
    wait_for,
)

GREET = "io.greeterd.Greeter.Greet"


def test_a_varlink_connection_carries_many_calls(serve, sock_dir):
    """Pipelined calls in one write and a later call on the same connection are all answered,
    in order; a refused name is InvalidName and logged with the peer's credentials."""
    with serve(varlink_listener(sock_dir / "v.sock")) as running, connect(sock_dir / "v.sock") as s:
        s.sendall(varlink_call(GREET, name="A") + varlink_call(GREET, name="a\x1bb"))
        first = varlink_replies(s, 2)
        s.sendall(varlink_call(GREET, name="B"))
        (second,) = varlink_replies(s, 1)
        running.sigterm()
        running.join()
    assert first == [
        {"parameters": {"greeting": "Hello, A"}},
        {
            "error": "io.greeterd.Greeter.InvalidName",
            "parameters": {"reason": "control character in name"},
        },
    ]
    assert second == {"parameters": {"greeting": "Hello, B"}}
    assert running.server.greeted == 2
    assert (
        f"refused request from pid {os.getpid()} uid {os.getuid()}: control character"
        in running.log
    )


def test_an_idle_varlink_connection_is_closed_and_frees_its_place(serve, sock_dir):
    """Silent past the idle timeout, a Varlink connection is closed without a reply."""
    with serve(varlink_listener(sock_dir / "v.sock"), varlink_idle_timeout=0.3) as running:
        with connect(sock_dir / "v.sock") as s:
            s.sendall(varlink_call(GREET, name="A"))
            varlink_replies(s, 1)
            started = time.monotonic()
            assert s.recv(100) == b""
            assert 0.2 < time.monotonic() - started < 3
        wait_for(lambda: running.server.waiting == 0, what="the place to be free")


@pytest.mark.parametrize("calls_first", [0, 1], ids=["before its first call", "after a call"])
def test_a_varlink_call_sent_a_byte_at_a_time_is_cut_off_at_the_deadline(
    serve, sock_dir, calls_first
):
    """Bounded time per client: bytes that complete no call do not extend a connection's
    deadline (the first call's, or the one its last whole call set), so a client that drips
    a call is closed at it instead of holding its place for as long as it drips."""
    timeouts = {"read_timeout": 0.5, "varlink_idle_timeout": 0.5}
    with (
        serve(varlink_listener(sock_dir / "v.sock"), **timeouts),
        connect(sock_dir / "v.sock") as s,
    ):
        if calls_first:
            s.sendall(varlink_call(GREET, name="A"))
            varlink_replies(s, 1)
        closed_after = dribble_until_closed(s, varlink_call(GREET, name="B")[:-1], every=0.1)
    assert closed_after is not None, "the connection outlived every byte of the call"
    assert closed_after < 2


def dribble_until_closed(s: socket.socket, data: bytes, every: float) -> float | None:
    """Send ``data`` a byte every ``every`` seconds; return the seconds until the server
    closed the connection, or None if it never did."""
    started = time.monotonic()
    s.settimeout(every)
    for byte in data:
        try:
            if s.recv(100) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:  # closed with our bytes unread
            return time.monotonic() - started
        with contextlib.suppress(OSError):
            s.send(bytes([byte]))
    return None


def test_sigterm_ends_idle_varlink_connections_at_once(serve, sock_dir):
    """A drain does not wait for Varlink clients between calls: they are closed."""
    with serve(varlink_listener(sock_dir / "v.sock")) as running, connect(sock_dir / "v.sock") as s:
        s.sendall(varlink_call(GREET, name="A"))
        varlink_replies(s, 1)
        started = time.monotonic()
        running.sigterm()
        running.join()
        assert time.monotonic() - started < 2
        assert s.recv(100) == b""


def test_a_varlink_message_past_the_cap_closes_the_connection(serve, sock_dir):
    """No NUL within MAX_MESSAGE_BYTES: the connection is closed, the server goes on."""
    with serve(varlink_listener(sock_dir / "v.sock")) as running:
        with connect(sock_dir / "v.sock") as s:
            with contextlib.suppress(OSError):
                s.sendall(b"x" * (varlink.MAX_MESSAGE_BYTES + 10))
            assert read_reply(s) == b""
        with connect(sock_dir / "v.sock") as s:
            s.sendall(varlink_call(GREET, name="again"))
            assert varlink_replies(s, 1) == [{"parameters": {"greeting": "Hello, again"}}]
        assert running.server.waiting <= 1


def test_varlink_connections_count_against_the_client_cap(serve, sock_dir):
    """With max_connections=1 held by a Varlink client, a line client waits in the backlog."""
    line = listener(sock_dir / "l.sock")
    with serve(varlink_listener(sock_dir / "v.sock"), line, max_connections=1) as running:
        with connect(sock_dir / "v.sock") as held:
            held.sendall(varlink_call(GREET, name="A"))
            varlink_replies(held, 1)
            waiter = connect(sock_dir / "l.sock")
            waiter.sendall(b"Zo\xc3\xab\n")
            waiter.settimeout(0.3)
            with pytest.raises(TimeoutError):
                waiter.recv(100)
        waiter.settimeout(5)
        assert read_reply(waiter) == HELLO
        waiter.close()
        # The loop counts a greeting just after closing the connection: stop it first.
        running.sigterm()
        running.join()
    assert running.server.greeted == 2
