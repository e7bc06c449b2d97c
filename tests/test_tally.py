"""What the server counts and logs (tally.py): folded refusals and STATUS=; and its Duties: exit
on idle and the watchdog; through a Server in a thread on real sockets."""

import contextlib
import os
import time

from greeterd import folding, outlets
from greeterd.log import DEBUG, Log
from greeterd.tally import Tally
from tests.support import (
    MemoryOutlet,
    connect,
    exchange,
    greet,
    read_reply,
    unread_datagram_socket,
    wait_for,
)


def test_a_flood_of_refusals_is_folded_into_a_summary_that_adds_up(serve):
    """Past SINGLES_PER_KEY refusals of one uid and reason, the rest of the window become one
    summary line, written at the latest when the server stops; every refusal is counted."""
    with serve() as running:
        for _ in range(40):
            assert exchange(running.path, b"\x1b\n") == b"error: control character in name\n"
        running.sigterm()
        running.join()
    refusals = [line for line in running.log.splitlines() if "refused" in line]
    singles = [line for line in refusals if "refused request from" in line]
    (summary,) = [line for line in refusals if "more requests" in line]
    assert len(singles) == folding.SINGLES_PER_KEY
    assert f"uid {os.getuid()}" in summary
    assert "(GREETER_REPEATS=35)" in summary
    assert running.server.refused == 40


def test_status_reports_greetings(serve):
    """STATUS= tells systemd how many clients were greeted and refused."""
    with serve() as running:
        greet(running.path)
        exchange(running.path, b"\n")
        wait_for(
            lambda: "STATUS=1 greeted, 1 refused, 0 waiting" in running.notified,
            what="a STATUS= update",
        )


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


def test_folding_can_be_loaded_before_the_first_refusal():
    """load_folding() (run once the first clients are served) makes the folder, so that the
    first refusal imports nothing: out of fds, an import fails and would end greeterd."""
    tally = Tally(Log(DEBUG, MemoryOutlet()), lambda: 0.0)
    tally.load_folding()
    assert tally._folder is not None
    assert tally.next_due is None  # nothing refused yet: no summary due
