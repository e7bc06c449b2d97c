"""The loop and the accept loop (server.py), run in a thread on real sockets in a temporary
directory: deadlines, the client cap, stopping, exit on idle and the watchdog."""

import contextlib
import time

import pytest

from greeterd import outlets, protocol, waiting
from tests.support import (
    HELLO,
    connect,
    error_line,
    greet,
    listener,
    read_reply,
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
