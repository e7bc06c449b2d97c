"""What the loop listens on besides its clients (listeners.py), on real sockets and a real
epoll set: the accept gate takes the listening sockets out of epoll and puts them back,
accept()'s errors are named (gone, out of resources, a real fault), datagram sockets stop
only with stop(), and a stop signal is read from the wakeup pipe by name. The loop that
uses them is tested in test_server.py, the out-of-fds run in integration/test_exhaustion.py."""

import errno
import os
import select
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from greeterd import log
from greeterd.lifecycle import ACCEPT_BACKOFF, AT_CAP, STOPPING
from greeterd.listeners import Listeners
from tests.support import MemoryOutlet, datagram_socket, listener


class Setup:
    """Listeners over a listening socket and a datagram socket in ``sock_dir``, each with a
    client waiting, so epoll reports whichever is watched; the clock is ``self.now``."""

    def __init__(self, sock_dir: Path) -> None:
        self.epoll = select.epoll()
        self.outlet = MemoryOutlet()
        self.now = 100.0
        self.listening = listener(sock_dir / "s")
        self.datagram = datagram_socket(sock_dir / "d")
        self.listeners = Listeners(
            [self.listening, self.datagram],
            self.epoll,
            log.Log(log.DEBUG, self.outlet),
            lambda: self.now,
        )
        self.client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.client.connect(str(sock_dir / "s"))
        self.sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sender.sendto(b"Zo\n", str(sock_dir / "d"))

    def reported(self) -> set[str]:
        """The endpoints epoll reports as readable now: 'listening', 'datagram'."""
        names = {self.listening.sock.fileno(): "listening", self.datagram.sock.fileno(): "datagram"}
        return {names[fd] for fd, _ in self.epoll.poll(0) if fd in names}

    def close(self) -> None:
        for sock in (self.client, self.sender, self.listening.sock, self.datagram.sock):
            sock.close()
        self.epoll.close()


@pytest.fixture
def setup(sock_dir: Path) -> Iterator[Setup]:
    made = Setup(sock_dir)
    yield made
    made.close()


def test_both_kinds_of_socket_are_known_by_fd_and_watched_from_the_start(setup):
    """The listening socket has its accept call, type and Varlink flag by fd, the datagram
    socket its socket; epoll watches both at once."""
    accept, kind, varlink = setup.listeners.accepting[setup.listening.sock.fileno()]
    assert callable(accept)
    assert (kind, varlink) == (socket.SOCK_STREAM, False)
    assert setup.listeners.datagram_socks == {setup.datagram.sock.fileno(): setup.datagram.sock}
    assert setup.reported() == {"listening", "datagram"}


def test_a_closed_gate_leaves_new_clients_in_the_backlog_until_every_reason_is_gone(setup):
    """close_gate() takes the listening sockets out of epoll (datagrams go on); they come
    back only when the last reason is reopened."""
    listeners = setup.listeners
    listeners.close_gate(AT_CAP)
    assert setup.reported() == {"datagram"}
    listeners.accept_failed(OSError(errno.EMFILE, "Too many open files"), 0)
    listeners.reopen_gate(AT_CAP)
    assert setup.reported() == {"datagram"}, "the back-off still holds the gate shut"
    listeners.back_off_over(setup.now + ACCEPT_BACKOFF)
    assert setup.reported() == {"listening", "datagram"}
    assert listeners.gate.open


def test_stop_takes_nothing_new_for_good(setup):
    """stop() unwatches the listening and the datagram sockets; nothing reopens the gate."""
    setup.listeners.stop()
    assert setup.reported() == set()
    setup.listeners.reopen_gate(STOPPING)
    assert setup.reported() == set()
    assert not setup.listeners.gate.open


def test_out_of_fds_on_accept_pauses_with_one_log_line_per_burst(setup):
    """EMFILE ends the batch and pauses accepting for ACCEPT_BACKOFF; a second failure in the
    same burst logs nothing more, and the first accept() that works says how many failed."""
    listeners = setup.listeners
    emfile = OSError(errno.EMFILE, "Too many open files")
    assert listeners.accept_failed(emfile, 7) is False
    assert setup.reported() == {"datagram"}
    listeners.back_off_over(setup.now + ACCEPT_BACKOFF / 2)
    assert setup.reported() == {"datagram"}, "the back-off ended early"
    listeners.back_off_over(setup.now + ACCEPT_BACKOFF)
    assert setup.reported() == {"listening", "datagram"}
    assert listeners.accept_failed(emfile, 7) is False
    assert setup.outlet.text.count("accept() failed: Too many open files") == 1
    assert "(7 clients waiting)" in setup.outlet.text
    listeners.accepting_again()
    assert "accepting again after 2 failed accept()s" in setup.outlet.text
    assert listeners.gate.failures == 0


def test_a_client_gone_before_accept_is_skipped_and_other_errors_surface(setup):
    """ECONNABORTED and EPROTO mean the client left: the batch goes on, nothing logged. Any
    error that is neither gone nor out of resources is a real fault and is raised."""
    for code in (errno.ECONNABORTED, errno.EPROTO):
        assert setup.listeners.accept_failed(OSError(code, os.strerror(code)), 0) is True
    assert setup.outlet.text == ""
    with pytest.raises(OSError, match="Bad file descriptor"):
        setup.listeners.accept_failed(OSError(errno.EBADF, "Bad file descriptor"), 0)
    assert setup.listeners.gate.open


def test_a_stop_signal_is_read_from_the_wakeup_pipe_by_name(setup):
    """The wakeup pipe is watched once named; each read gives the last signal's name (or
    'signal N' for one without a name), and None at the pipe's end of file."""
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK)
    try:
        setup.listeners.watch_wakeup_fd(read_fd, {signal.SIGTERM: "SIGTERM"})
        assert setup.listeners.wakeup_fd == read_fd
        os.write(write_fd, bytes([signal.SIGINT, signal.SIGTERM]))
        assert read_fd in {fd for fd, _ in setup.epoll.poll(0)}
        assert setup.listeners.stop_signal() == "SIGTERM"
        os.write(write_fd, bytes([99]))
        assert setup.listeners.stop_signal() == "signal 99"
        os.close(write_fd)
        write_fd = -1
        assert setup.listeners.stop_signal() is None
    finally:
        os.close(read_fd)
        if write_fd != -1:
            os.close(write_fd)
