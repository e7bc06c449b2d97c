"""Line-protocol clients (lines.py), stream and seqpacket, answered by a Server in a thread on
real sockets; the clients waited for (HeldClients): the client cap and deadlines; and the peer
credentials asked of them."""

import os
import socket
import struct
import time

from greeterd import lines, protocol, waiting
from greeterd.activation import CONNECTION, Endpoint
from tests.support import (
    HELLO,
    connect,
    error_line,
    exchange,
    greet,
    listener,
    read_reply,
    varlink_call,
    varlink_listener,
    varlink_replies,
    wait_for,
)

GREET = "io.greeterd.Greeter.Greet"


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


def test_past_the_connection_cap_clients_wait_in_the_backlog(serve):
    """With max_connections parked, the next client is not accepted until one leaves."""
    with serve(max_connections=2, read_timeout=0.5) as running:
        first, second = connect(running.path), connect(running.path)
        wait_for(lambda: running.server.waiting == 2, what="two parked clients")
        started = time.monotonic()
        third = greet(running.path)
        waited = time.monotonic() - started
        assert third == "Hello, Zoë\n".encode()
        assert waited > 0.3, "the third client was accepted beyond the cap"
        first.close()
        second.close()


def test_clients_that_leave_early_do_not_pile_up_until_their_deadline(serve, open_files):
    """3,000 clients connect, wait to be parked and hang up while one silent client stays:
    the deadline queue is compacted, never holding more than twice the live clients plus
    DEADLINE_SLACK finished ones, and the silent client still gets its timeout line."""
    open_files(2 * 1001)  # both ends of each connection live in this process
    with serve() as running, connect(running.path) as silent:
        wait_for(lambda: running.server.waiting == 1, what="the silent client parked")
        for _ in range(3):
            clients = [connect(running.path) for _ in range(1000)]
            wait_for(lambda: running.server.waiting == 1001, what="1000 more parked")
            for client in clients:
                client.close()
            wait_for(lambda: running.server.waiting == 1, what="all but the silent one gone")
        assert running.server.waiting_clients.queued() <= 2 * 1 + waiting.DEADLINE_SLACK
        assert greet(running.path) == HELLO
        silent.settimeout(10)
        assert read_reply(silent) == protocol.format_error(protocol.TIMED_OUT)


def test_a_long_varlink_deadline_does_not_delay_a_shorter_one_set_after_it(serve, sock_dir):
    """Deadlines of two lengths share one server: a silent line client that connects after a
    Varlink call renewed its connection's longer idle deadline is still cut off at its own
    read deadline, not at the Varlink one."""
    with (
        serve(
            listener(sock_dir / "s.sock"),
            varlink_listener(sock_dir / "v.sock"),
            read_timeout=0.3,
            varlink_idle_timeout=5,
        ),
        connect(sock_dir / "v.sock") as session,
    ):
        session.sendall(varlink_call(GREET, name="A"))
        varlink_replies(session, 1)  # its next deadline: 5 s from now
        with connect(sock_dir / "s.sock") as silent:
            started = time.monotonic()
            silent.settimeout(10)
            assert silent.recv(100) == error_line(protocol.TIMED_OUT)
            waited = time.monotonic() - started
    assert waited < 2, f"the line client waited {waited:.1f} s, behind the Varlink deadline"
