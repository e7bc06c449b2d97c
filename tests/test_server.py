"""The loop and the accept loop (server.py), run in a thread on real sockets in a temporary
directory: one silent client delays no other, and a stop drains. The client cap, each user's
share of it and deadlines are tested with HeldClients (test_lines.py), exit on idle and the
watchdog with Duties (test_tally.py), the accept gate, accept()'s errors and the stop signals'
pipe with Listeners (test_listeners.py)."""

import time

import pytest

from tests.support import (
    connect,
    greet,
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
