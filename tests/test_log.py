"""Log lines and sd_notify messages that never wait: real pipes and datagram sockets whose
reader does not read, and the count of what was lost."""

import fcntl
import os
import socket
import time
from pathlib import Path

import pytest

from greeterd import log, outlets
from tests.support import MemoryOutlet

#: What a reader that stopped reading leaves room for: the tests fill it first.
SMALL_PIPE = 4096


def parse_entry(entry: bytes) -> dict[str, str]:
    """The fields of one Native Journal Protocol entry, as journald reads them."""
    fields, rest = {}, entry
    while rest:
        line, _, rest = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
        else:
            size = int.from_bytes(rest[:8], "little")
            fields[line.decode()] = rest[8 : 8 + size].decode()
            rest = rest[8 + size + 1 :]
    return fields


def test_a_journal_entry_carries_the_message_priority_and_fields():
    """Fields become GREETER_* keys; a value with a newline uses the length-prefixed form."""
    entry = log.journal_entry(log.NOTICE, "refused\nrequest", {"peer_uid": 1000})
    assert parse_entry(entry) == {
        "MESSAGE": "refused\nrequest",
        "PRIORITY": "5",
        "SYSLOG_IDENTIFIER": "greeterd",
        "GREETER_PEER_UID": "1000",
    }


def test_lines_that_cannot_be_written_are_counted_and_reported_once_they_can():
    """While the outlet refuses, lines are dropped and counted; the first line written after
    says how many were lost, with GREETER_LINES_LOST, before the line itself."""
    outlet = MemoryOutlet(structured=True)
    logger = log.Log(log.INFO, outlet)
    outlet.taking = False
    for number in range(3):
        logger.notice(f"line {number}")
    assert logger.lost == 3
    outlet.taking = True
    logger.notice("after")
    lost, after = (parse_entry(entry) for entry in outlet.sent)
    assert lost["GREETER_LINES_LOST"] == "3"
    assert lost["PRIORITY"] == str(log.WARNING)
    assert after["MESSAGE"] == "after"
    assert logger.lost == 0


def test_lines_below_the_level_are_not_lost_lines():
    """A debug line at level info is not written and not counted."""
    outlet = MemoryOutlet()
    logger = log.Log(log.INFO, outlet)
    logger.debug("quiet")
    assert (outlet.sent, logger.lost) == ([], 0)


@pytest.fixture
def full_pipe():
    """A pipe of one page whose reader never reads, already full: (read end, write end)."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, SMALL_PIPE)
    os.set_blocking(write_end, False)
    while True:
        try:
            os.write(write_end, b"x" * 512)
        except BlockingIOError:
            break
    os.set_blocking(write_end, True)
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def test_standard_error_on_a_full_pipe_does_not_block(full_pipe):
    """A line to a pipe nobody reads is refused at once, and the pipe's own file description
    stays blocking: other writers to it (a shell, a supervisor) are left as they were."""
    read_end, write_end = full_pipe
    outlet = outlets.StreamOutlet(write_end)
    try:
        started = time.monotonic()
        assert not outlet.send(b"greeterd: notice: a line\n")
        assert time.monotonic() - started < 1
        assert os.get_blocking(write_end)
        os.read(read_end, 65536)
        assert outlet.send(b"greeterd: notice: a line\n")
    finally:
        outlet.close()


def test_a_line_longer_than_pipe_buf_is_cut_to_one_whole_write(sock_dir: Path):
    """Each line is one write of at most PIPE_BUF bytes, so a pipe never gets part of it."""
    read_end, write_end = os.pipe()
    outlet = outlets.StreamOutlet(write_end)
    try:
        assert outlet.send(b"y" * 10000 + b"\n")
        line = os.read(read_end, 65536)
        assert len(line) == outlets.MAX_LINE_BYTES
        assert line.endswith("…\n".encode())
    finally:
        outlet.close()
        os.close(read_end)
        os.close(write_end)


def unread_datagram_socket(path: Path) -> socket.socket:
    """A bound datagram socket, as journald's or PID 1's would be while they are stopped."""
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(str(path))
    return reader


def test_a_journal_that_does_not_read_is_not_waited_for(sock_dir: Path):
    """Once the journal socket's queue is full, entries are refused at once; when it reads
    again, they go through."""
    with unread_datagram_socket(sock_dir / "journal") as reader:
        outlet = outlets.JournalOutlet(str(sock_dir / "journal"))
        entry = log.journal_entry(log.NOTICE, "refused", {})
        started = time.monotonic()
        results = [outlet.send(entry) for _ in range(5000)]
        assert time.monotonic() - started < 2
        assert results[0]
        assert not results[-1], "the queue never filled: the test proved nothing"
        reader.setblocking(False)
        while True:
            try:
                reader.recv(65536)
            except BlockingIOError:
                break
        assert outlet.send(entry)
        outlet.close()


def test_an_entry_too_large_for_a_datagram_goes_in_a_sealed_memfd(sock_dir: Path):
    """The Native Journal Protocol's way for large entries: the fd of a sealed memfd."""
    with unread_datagram_socket(sock_dir / "journal") as reader:
        outlet = outlets.JournalOutlet(str(sock_dir / "journal"))
        entry = log.journal_entry(log.NOTICE, "x" * 400_000, {})
        assert outlet.send(entry)
        data, ancillary, _, _ = reader.recvmsg(16, socket.CMSG_SPACE(4))
        assert data == b""
        (level, kind, raw), *_ = ancillary
        assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
        memfd = int.from_bytes(raw[:4], "little")
        try:
            assert os.pread(memfd, len(entry) + 1, 0) == entry
            assert fcntl.fcntl(memfd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_WRITE
        finally:
            os.close(memfd)
        outlet.close()


def test_notify_drops_status_but_waits_a_while_for_ready(sock_dir: Path):
    """With PID 1's queue full, STATUS= and WATCHDOG=1 are dropped at once and counted;
    READY=1 waits up to NOTIFY_WAIT for room, then gives up."""
    with unread_datagram_socket(sock_dir / "notify") as reader:
        notify = outlets.Notifier(str(sock_dir / "notify"))
        assert notify("READY=1")
        while notify("WATCHDOG=1"):
            pass
        dropped = notify.dropped
        assert not notify("STATUS=busy")
        assert notify.dropped == dropped + 1
        started = time.monotonic()
        assert not notify("STOPPING=1")
        waited = time.monotonic() - started
        assert outlets.NOTIFY_WAIT * 0.9 <= waited < outlets.NOTIFY_WAIT + 1
        assert reader.recv(64) == b"READY=1"
        notify.close()


def test_notify_reaches_an_abstract_address():
    """NOTIFY_SOCKET may name an abstract socket, written with a leading '@'."""
    name = f"greeterd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as reader:
        reader.bind("\0" + name)
        notify = outlets.Notifier("@" + name)
        assert notify("READY=1")
        assert reader.recv(64) == b"READY=1"
        notify.close()


def test_without_notify_socket_notify_does_nothing():
    """Outside systemd there is nobody to tell: nothing is sent, nothing counted."""
    notify = outlets.Notifier(None)
    assert not notify("READY=1")
    assert notify.dropped == 0
