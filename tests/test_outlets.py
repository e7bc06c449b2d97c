"""Journal entries, lines on standard error and sd_notify messages that never wait: real pipes
and datagram sockets whose reader does not read."""

import fcntl
import os
import socket
import time
from pathlib import Path

import pytest

from greeterd import log, outlets
from tests.support import unread_datagram_socket

#: What a reader that stopped reading leaves room for: the tests fill it first.
SMALL_PIPE = 4096


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


def test_a_named_process_begins_its_status_with_its_name(sock_dir: Path):
    """Notifier(..., "worker-2") turns STATUS=... into STATUS=worker-2: ..., and leaves the
    other lines of a message alone."""
    with unread_datagram_socket(sock_dir / "notify") as reader:
        notify = outlets.Notifier(str(sock_dir / "notify"), "worker-2")
        assert notify("READY=1\nSTATUS=Greeting on stream")
        assert notify("WATCHDOG=1")
        assert reader.recv(64) == b"READY=1\nSTATUS=worker-2: Greeting on stream"
        assert reader.recv(64) == b"WATCHDOG=1"
        notify.close()
