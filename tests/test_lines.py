"""Line-protocol clients (lines.py), stream and seqpacket, answered by a Server in a thread on
real sockets; the clients waited for (HeldClients): the client cap, each user's share of it, and
deadlines; and the peer credentials asked of them."""

import os
import socket
import struct
import subprocess
import time

from greeterd import lines, protocol, server, waiting
from greeterd.activation import CONNECTION, Endpoint
from tests.support import (
    HELLO,
    connect,
    error_line,
    exchange,
    greet,
    listener,
    read_reply,
    skip_or_fail,
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


# -- each user's share of the clients waited for (MAX_CLIENTS_PER_UID) --------------------

TOO_MANY = error_line(protocol.TOO_MANY_WAITING)

#: Run as another user: connect to argv[1], say "connected", then wait for the reply (or for
#: standard input to close) and print it.
SILENT_CLIENT = """
import socket, sys
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
    s.settimeout(30)
    s.connect(sys.argv[1])
    print("connected", flush=True)
    print(repr(s.recv(200)), flush=True)
"""


def test_past_its_share_a_users_next_waiting_client_is_refused_at_once(serve):
    """With the share at 2, a user's third silent client gets the TOO_MANY_WAITING line at
    once (not at the read deadline), is not waited for, and is logged with its uid; a client
    of the same user that sends its name with it is still greeted (the fast path counts
    nobody); once one of the two leaves, the next silent one is waited for again."""
    with serve(max_clients_per_uid=2, read_timeout=30) as running:
        first, second = connect(running.path), connect(running.path)
        wait_for(lambda: running.server.waiting == 2, what="two waiting clients")
        started = time.monotonic()
        with connect(running.path) as third:
            assert read_reply(third) == TOO_MANY
        assert time.monotonic() - started < 2, "the refusal waited for something"
        assert running.server.waiting == 2
        assert greet(running.path) == HELLO
        first.close()
        wait_for(lambda: running.server.waiting == 1, what="the first one gone")
        with connect(running.path) as fourth:
            wait_for(lambda: running.server.waiting == 2, what="the fourth one waited for")
            fourth.sendall(b"Ada\n")
            assert read_reply(fourth) == b"Hello, Ada\n"
        second.close()
        wait_for(lambda: running.server.waiting == 0, what="all gone")
        assert len(running.server.held.shares) == 0, "an empty user's entry was kept"
    refusal = f"uid {os.getuid()}: {protocol.TOO_MANY_WAITING}"
    assert refusal in running.log


def test_a_user_past_its_share_is_refused_on_seqpacket_and_varlink_too(serve, sock_dir):
    """One share across every kind of client that waits: with the share at 1 and a Varlink
    connection held, a silent seqpacket client gets the refusal as one message, and a second
    Varlink connection gets one TooManyClients error, then the end of the connection."""
    with serve(
        varlink_listener(sock_dir / "v.sock"),
        listener(sock_dir / "q.sock", socket.SOCK_SEQPACKET),
        max_clients_per_uid=1,
    ) as running:
        held = connect(sock_dir / "v.sock")
        wait_for(lambda: running.server.waiting == 1, what="the Varlink connection held")
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as packets:
            packets.settimeout(5)
            packets.connect(str(sock_dir / "q.sock"))
            assert packets.recv(200) == TOO_MANY
        with connect(sock_dir / "v.sock") as turned_away:
            turned_away.sendall(varlink_call(GREET, name="A"))
            assert varlink_replies(turned_away, 1) == [
                {
                    "error": "io.greeterd.Greeter.TooManyClients",
                    "parameters": {"reason": protocol.TOO_MANY_WAITING},
                }
            ]
            assert read_reply(turned_away) == b""
        held.sendall(varlink_call(GREET, name="B"))
        assert varlink_replies(held, 1) == [{"parameters": {"greeting": "Hello, B"}}]
        held.close()
    assert running.server.refused == 2


def test_an_exempt_uid_may_have_any_number_waiting(serve):
    """exempt_uids (the daemon gives root and its own uid): with the share at 1, five silent
    clients of an exempt uid are all waited for, and no entry is kept for it."""
    with serve(max_clients_per_uid=1, exempt_uids=(os.getuid(),)) as running:
        clients = [connect(running.path) for _ in range(5)]
        wait_for(lambda: running.server.waiting == 5, what="five waiting clients")
        assert len(running.server.held.shares) == 0
        for client in clients:
            client.close()


def test_one_user_at_its_share_does_not_keep_another_users_client_waiting(serve, sock_dir):
    """The point of the share: this user holds its share (2) and floods 50 more silent
    clients, which are refused; another user's silent client (nobody, uid 65534) is still
    accepted and waited for, and gets its own timeout line, not the refusal."""
    if os.geteuid() != 0:
        skip_or_fail("connecting as another user needs root")
    sock_dir.chmod(0o755)
    python = "/usr/bin/python3"  # the system's: one nobody may run, unlike a venv in /root
    if not os.access(python, os.X_OK):
        skip_or_fail(f"{python} is missing")
    with serve(max_clients_per_uid=2, read_timeout=1.0) as running:
        assert running.path is not None
        running.path.chmod(0o777)
        ours = [connect(running.path) for _ in range(2)]
        wait_for(lambda: running.server.waiting == 2, what="our share waiting")
        for _ in range(50):
            with connect(running.path) as extra:
                assert read_reply(extra) == TOO_MANY
        other = subprocess.Popen(
            [python, "-I", "-c", SILENT_CLIENT, str(running.path)],
            user=65534,
            group=65534,
            stdout=subprocess.PIPE,
            text=True,
        )
        out, _ = other.communicate(timeout=20)
        for sock in ours:
            sock.close()
    assert out.splitlines() == ["connected", repr(error_line(protocol.TIMED_OUT))]
    assert "uid 65534: timed out" in running.log


def test_the_share_is_fitted_to_the_open_files_greeterd_has(serve):
    """fit_to_open_files(): with 1024 open files (a container's limit) greeterd holds about
    1000 clients, not MAX_CONNECTIONS, so each user's share becomes a quarter of those; with
    plenty of fds the share stays as set, and it is never raised."""
    with serve() as running:
        running.server.held.fit_to_open_files(1 << 20)
        assert running.server.held.shares.share == server.MAX_CLIENTS_PER_UID
        running.server.held.fit_to_open_files(1024)
        assert running.server.held.shares.share == (1024 - lines.SPARE_FDS) // 4
        running.server.held.fit_to_open_files(1 << 20)
        assert running.server.held.shares.share == (1024 - lines.SPARE_FDS) // 4
