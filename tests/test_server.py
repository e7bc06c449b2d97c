"""The loop and the accept loop (server.py), run in a thread on real sockets in a temporary
directory: deadlines, the client cap and each user's share of it, stopping, exit on idle and the
watchdog."""

import contextlib
import os
import socket
import subprocess
import time

import pytest

from greeterd import outlets, protocol, server, waiting
from tests.support import (
    HELLO,
    connect,
    error_line,
    greet,
    listener,
    read_reply,
    skip_or_fail,
    unread_datagram_socket,
    varlink_call,
    varlink_listener,
    varlink_replies,
    wait_for,
)

GREET = "io.greeterd.Greeter.Greet"


def test_a_silent_client_does_not_delay_others(serve):
    """While one client sends nothing, others are greeted at once."""
    with serve() as running, connect(running.path):
        started = time.monotonic()
        for _ in range(20):
            assert greet(running.path) == "Hello, Zoë\n".encode()
        assert time.monotonic() - started < 1.0


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


def test_sigterm_drains_clients_in_flight_and_stops_accepting(serve):
    """STOPPING=1, no new accepts, the parked client still greeted, then run() returns."""
    with serve() as running, connect(running.path) as parked:
        parked.send(b"Zo")
        wait_for(lambda: running.server.waiting, what="the parked client")
        running.sigterm()
        wait_for(lambda: any("STOPPING=1" in n for n in running.notified), what="STOPPING=1")
        late = connect(running.path)  # queued in the backlog, never accepted
        parked.send(b"\xc3\xab\n")
        assert read_reply(parked) == "Hello, Zoë\n".encode()
        running.join()
        late.settimeout(0.2)
        with pytest.raises(TimeoutError):
            late.recv(1)
        late.close()
    assert "stopping (SIGTERM)" in running.log


def test_exit_on_idle_stops_after_the_idle_time(serve):
    """With nothing to do for exit_idle_time, the loop sends STOPPING=1 and returns."""
    with serve(exit_idle_time=0.3) as running:
        greet(running.path)
        started = time.monotonic()
        running.join()
        assert 0.2 < time.monotonic() - started < 3.0
    assert any(n.startswith("STOPPING=1") for n in running.notified)
    assert "idle for 0.3s" in running.log


def test_exit_on_idle_waits_for_parked_clients(serve):
    """A client still sending its name keeps the server up past the idle time."""
    with serve(exit_idle_time=0.2) as running, connect(running.path) as slow:
        time.sleep(0.5)
        assert running.thread.is_alive()
        slow.send(b"Ada\n")
        assert read_reply(slow) == b"Hello, Ada\n"
        running.join()


def test_the_loop_sends_watchdog_pings(serve):
    """WATCHDOG=1 reaches notify from the loop, again and again (test_lifecycle.py proves
    the times exactly)."""
    with serve(watchdog_interval=0.05) as running:
        wait_for(lambda: running.notified.count("WATCHDOG=1") >= 3, what="three pings")


def test_a_watchdog_ping_dropped_by_a_full_queue_is_sent_again_promptly(serve, sock_dir):
    """With PID 1's notify queue full, the WATCHDOG=1 that could not go is sent again within
    moments of the queue having room, not a watchdog interval (here 60 s) later."""
    with unread_datagram_socket(sock_dir / "notify") as pid1:
        notify = outlets.Notifier(str(sock_dir / "notify"))
        while notify("STATUS=filling PID 1's queue"):
            pass
        filled = notify.dropped
        with serve(notify=notify, watchdog_interval=60.0):
            wait_for(lambda: notify.dropped > filled, what="the first ping to be dropped")
            pid1.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while pid1.recv(64).startswith(b"STATUS=filling"):
                    pass
            room = time.monotonic()
            pid1.settimeout(10)
            while (message := pid1.recv(64)) != b"WATCHDOG=1":
                assert message.startswith(b"STATUS="), message
            assert time.monotonic() - room < 2.0, "the ping waited for the next interval"
        notify.close()


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
        assert len(running.server.shares) == 0, "an empty user's entry was kept"
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
        assert len(running.server.shares) == 0
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
        running.server.fit_to_open_files(1 << 20)
        assert running.server.shares.share == server.MAX_CLIENTS_PER_UID
        running.server.fit_to_open_files(1024)
        assert running.server.shares.share == (1024 - server.SPARE_FDS) // 4
        running.server.fit_to_open_files(1 << 20)
        assert running.server.shares.share == (1024 - server.SPARE_FDS) // 4
