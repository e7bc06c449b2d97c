"""Line-protocol clients (lines.py), stream and seqpacket, answered by a Server in a thread on
real sockets; and the peer credentials asked of them."""

import os
import socket
import struct
import time

from greeterd import lines, protocol
from greeterd.activation import CONNECTION, Endpoint
from tests.support import (
    HELLO,
    connect,
    exchange,
    greet,
    listener,
    read_reply,
    wait_for,
)


def test_a_client_is_greeted(serve):
    """The basic exchange: name in, greeting out, connection closed."""
    with serve() as running:
        assert greet(running.path, "Zoë") == "Hello, Zoë\n".encode()
        # The loop counts the greeting just after closing the connection: stop it first.
        running.sigterm()
        running.join()
    assert running.server.greeted == 1


def test_a_name_sent_byte_by_byte_is_greeted(serve):
    """A slow client is parked in epoll and answered once its newline arrives."""
    with serve() as running, connect(running.path) as sock:
        for byte in "Zoë\n".encode():
            sock.send(bytes([byte]))
            time.sleep(0.01)
        assert read_reply(sock) == "Hello, Zoë\n".encode()


def test_a_silent_client_is_cut_off_at_the_read_deadline(serve):
    """After read_timeout the client gets the timeout error line and a log line names it."""
    with serve(read_timeout=0.2) as running, connect(running.path) as sock:
        started = time.monotonic()
        assert read_reply(sock) == protocol.format_error(protocol.TIMED_OUT)
        assert 0.15 < time.monotonic() - started < 2.0
        wait_for(lambda: "timed out" in running.log, what="the timeout's log line")
    assert f"refused request from pid {os.getpid()} uid {os.getuid()}: timed out" in running.log


def test_refusals_are_logged_with_peer_credentials_and_escaped(serve):
    """One log line per refused request: reason, pid and uid, and the bytes escaped."""
    with serve() as running:
        assert exchange(running.path, b"a\x1b[2Jb\n") == b"error: control character in name\n"
        wait_for(lambda: "refused" in running.log, what="the refusal's log line")
    line = next(line for line in running.log.splitlines() if "refused" in line)
    assert f"pid {os.getpid()} uid {os.getuid()}" in line
    assert "\x1b" not in line
    assert "'a\\x1b[2Jb\\n'" in line


def test_a_client_that_leaves_without_a_word_is_not_a_refusal(serve):
    """Connect-and-close is counted as lost, not logged as a refused request."""
    with serve() as running:
        connect(running.path).close()
        wait_for(lambda: running.server.lost == 1, what="the lost client")
    assert running.server.refused == 0
    assert "refused" not in running.log


def test_a_handed_over_connection_is_served_and_then_the_loop_returns(serve):
    """Accept=yes: one connected socket, one greeting, and run() returns by itself."""
    ours, client = socket.socketpair()
    ours.setblocking(False)
    with serve(Endpoint(ours, "connection", CONNECTION)) as running, client:
        client.sendall(b"Ada\n")
        assert read_reply(client) == b"Hello, Ada\n"
        running.join(5)
    assert running.server.greeted == 1


def test_a_silent_handed_over_connection_times_out_and_the_loop_returns(serve):
    """Accept=yes and a client that says nothing: the timeout line, then run() returns."""
    ours, client = socket.socketpair()
    ours.setblocking(False)
    with serve(Endpoint(ours, "connection", CONNECTION), read_timeout=0.2) as running, client:
        assert read_reply(client) == protocol.format_error(protocol.TIMED_OUT)
        running.join(5)


def test_seqpacket_clients_send_one_message_and_get_one_reply(serve, sock_dir):
    """On a seqpacket listener a message is a name (newline optional), the reply a message."""
    with serve(listener(sock_dir / "q", socket.SOCK_SEQPACKET)):
        for message, reply in [
            (b"Zo\xc3\xab", HELLO),
            (b"Ada\n", b"Hello, Ada\n"),
            (b"a\nb", b"error: control character in name\n"),
        ]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
                client.settimeout(5)
                client.connect(str(sock_dir / "q"))
                client.send(message)
                assert client.recv(4096) == reply


def test_peer_credentials_are_those_of_the_process_at_the_other_end():
    """SO_PEERCRED, read by peer_credentials() and worded by describe_peer(): the other end of
    a socketpair is this process."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        assert lines.peer_credentials(ours) == (os.getpid(), os.getuid(), os.getgid())
        assert lines.describe_peer(ours) == f"pid {os.getpid()} uid {os.getuid()}"


def test_a_socket_that_cannot_say_has_unknown_credentials():
    """A socket the kernel gives no credentials for (here, its fd is already closed) gives
    UNKNOWN_PEER instead of an exception."""
    closed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    closed.close()
    assert lines.peer_credentials(closed) == lines.UNKNOWN_PEER


def test_ucred_reads_pid_uid_and_gid_in_the_machines_byte_order():
    """struct ucred is three C ints in native order; -1 (unknown) stays -1."""
    assert lines.ucred(struct.pack("=iii", 42, 1000, -1)) == (42, 1000, -1)
