"""The journal under systemd: a stopped journald never stops a greeting, and a flood of
refusals costs a bounded number of lines whose counts add up."""

from greeterd.folding import FOLD_WINDOW, SINGLES_PER_KEY
from tests.container.conftest import Container
from tests.support import wait_for

#: How long journald stays stopped, and the flood runs: past the 5 s watchdog three times over.
STALL_SECONDS = 16


def refusal_lines(container: Container, uid: int | None = None) -> list[dict[str, str]]:
    """greeterd's journal entries about refusals (single lines and summaries), of one uid."""
    return [
        entry
        for entry in container.journal_entries("greeter.service")
        if "GREETER_REASON" in entry and uid in (None, int(entry["GREETER_PEER_UID"]))
    ]


#: Fills a stopped journald's socket queue with filler entries until the kernel refuses more
#: (EAGAIN with the queue at net.unix.max_dgram_qlen, 512 as on a host), from fresh sockets
#: since each sender's own buffer fills first; prints how many it queued.
FILL_JOURNAL_QUEUE = """
import socket
queued = 0
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect("/run/systemd/journal/socket")
    sent = 0
    try:
        while True:
            s.send(b"MESSAGE=filler while journald is stopped\\n")
            sent += 1
    except BlockingIOError:
        pass
    queued += sent
    if sent == 0:
        break
print(queued)
"""


def stop_journald(container: Container, signal: str) -> None:
    pid = container.main_pid("systemd-journald.service")
    container.exec("sh", "-c", f"kill -{signal} {pid}")


def test_a_stopped_journald_never_stops_a_greeting(container):
    """journald SIGSTOPped, its socket's queue full (as a stalled journald's is on a host,
    whose queue holds 512), while three uids flood greeterd with refusals (three reasons
    each): probes every 50 ms are all greeted, p99 under 100 ms, with no restart; once
    journald runs again, one entry says how many lines were lost (GREETER_LINES_LOST)."""
    assert container.client("--name", "warm").returncode == 0
    stop_journald(container, "STOP")
    try:
        queued = container.exec("python3", "-c", FILL_JOURNAL_QUEUE).stdout.strip()
        print(f"journald stopped: its queue took {queued} filler entries before it was full")
        result = container.load("flood", str(STALL_SECONDS), "3", "3")
        restarts = container.show("greeter.service", "NRestarts")["NRestarts"]
    finally:
        stop_journald(container, "CONT")
    print(
        f"journald stopped {STALL_SECONDS} s: {result['greeted']}/{result['probes']} probes "
        f"greeted, p99 {result['p99_ms']} ms, {result['refused']} refusals meanwhile"
    )
    assert result["greeted"] >= 0.99 * result["probes"], result["failures"]
    assert result["p99_ms"] < 100
    assert restarts == "0"
    assert result["refused"] > 10_000, "no flood to speak of: the test proved nothing"

    def lost_entries():
        return [
            entry
            for entry in container.journal_entries("greeter.service")
            if "GREETER_LINES_LOST" in entry
        ]

    (lost,) = wait_for(lost_entries, timeout=FOLD_WINDOW + 20, interval=0.5, what="LINES_LOST")
    print(f"journald stopped: {lost['GREETER_LINES_LOST']} lines lost, reported afterwards")
    assert int(lost["GREETER_LINES_LOST"]) > 0


def test_a_flood_from_one_uid_is_a_few_lines_that_add_up(container):
    """A 10 s flood from one uid: a few single lines and a summary per window, and their counts
    (one each, GREETER_REPEATS for a summary) add up to the refusals the client saw."""
    assert container.client("--name", "warm").returncode == 0
    result = container.load("flood", "10", "1", "1")
    uid = result["flooders"][0]["uid"]

    def counted() -> int:
        return sum(int(line.get("GREETER_REPEATS", 1)) for line in refusal_lines(container, uid))

    wait_for(
        lambda: counted() >= result["refused"],
        timeout=FOLD_WINDOW + 20,
        interval=0.5,
        what=f"summaries adding up to {result['refused']} refusals (at {counted()})",
    )
    lines = refusal_lines(container, uid)
    print(f"flood from one uid: {result['refused']} refusals in 10 s, {len(lines)} journal lines")
    assert counted() == result["refused"]
    # The flood spans at most two windows: SINGLES_PER_KEY lines and one summary in each.
    assert len(lines) <= 2 * (SINGLES_PER_KEY + 1)
