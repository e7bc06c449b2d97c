"""The loop and the accept loop (server.py), run in a thread on real sockets in a temporary
directory: one silent client delays no other, and a stop drains. The client cap, each user's
share of it and deadlines are tested with HeldClients (test_lines.py), exit on idle and the
watchdog with Duties (test_tally.py), the accept gate, accept()'s errors and the stop signals'
pipe with Listeners (test_listeners.py)."""

import time

import pytest

from greeterd import log, protocol, server
from tests.support import (
    MemoryOutlet,
    connect,
    greet,
    listener,
    read_reply,
    wait_for,
)


def test_a_silent_client_does_not_delay_others(serve):
    """While one client sends nothing, others are greeted at once."""
    with serve() as running, connect(running.path):
        started = time.monotonic()
        for _ in range(20):
            assert greet(running.path) == "Hello, Zoë\n".encode()
        assert time.monotonic() - started < 1.0


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


def test_a_wave_of_deadlines_is_worked_off_a_batch_per_turn(sock_dir, open_files):
    """Silent clients whose deadlines pass together are cut off ACCEPT_BATCH per turn of the
    loop, and while some are left the loop polls without waiting: a new client waits behind
    one batch of such a wave, not the whole of it."""
    wave = 2 * server.ACCEPT_BATCH + 10
    open_files(2 * wave + 64)  # both ends of each connection live in this process
    ours = listener(sock_dir / "s.sock")
    # A read timeout of 0: every client held is out of time at once.
    greeter = server.Server([ours], log.Log(log.INFO, MemoryOutlet()), print, read_timeout=0.0)
    clients = [connect(sock_dir / "s.sock") for _ in range(wave)]
    while greeter.waiting < wave:
        greeter.accept_batch(ours.sock.fileno())
    now = time.monotonic()
    for left in (wave - server.ACCEPT_BATCH, wave - 2 * server.ACCEPT_BATCH):
        greeter._housekeeping(now)
        assert greeter.waiting == left
        assert greeter._poll_timeout(now) == 0.0
    greeter._housekeeping(now)
    assert greeter.waiting == 0
    for client in clients:
        assert read_reply(client) == protocol.format_error(protocol.TIMED_OUT)
        client.close()
    greeter.epoll.close()
    ours.sock.close()
