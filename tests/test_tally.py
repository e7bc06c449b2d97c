"""What the server counts and logs (tally.py): folded refusals and STATUS=, through a Server in
a thread on real sockets."""

import os

from greeterd import folding
from greeterd.log import DEBUG, Log
from greeterd.tally import Tally
from tests.support import (
    MemoryOutlet,
    exchange,
    greet,
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


def test_folding_can_be_loaded_before_the_first_refusal():
    """load_folding() (run once the first clients are served) makes the folder, so that the
    first refusal imports nothing: out of fds, an import fails and would end greeterd."""
    tally = Tally(Log(DEBUG, MemoryOutlet()), lambda: 0.0)
    tally.load_folding()
    assert tally._folder is not None
    assert tally.next_due is None  # nothing refused yet: no summary due
