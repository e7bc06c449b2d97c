"""What the server's loop listens on besides its clients, as it sees them: the listening and
datagram sockets (which fd is which, whether epoll watches them, what an accept() that failed
means), and the pipe the stop signals arrive on.

The accept loop itself is server.py's accept_batch(), kept flat: it reads .accepting and .gate
and makes no call here per client. New clients are taken only while the accept gate
(lifecycle.AcceptGate) is open; while it is closed the listening sockets leave the epoll set and
new clients wait in the kernel's listen backlog. close_gate() and reopen_gate() are the one way
the gate and that registration change. Datagram sockets have no gate: neither the client cap
nor a back-off stops them (datagrams.py), only stop(). A stop signal is a byte in the pipe
signal.set_wakeup_fd() writes to (daemon.py sets it up): the loop wakes, reads it, and stops.
"""

from __future__ import annotations

import errno
import select

from greeterd.activation import DATAGRAM, LISTENER, VARLINK
from greeterd.lifecycle import ACCEPT_BACKOFF, OUT_OF_RESOURCES, STOPPING, AcceptGate
from greeterd.speedups import accepter, syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from greeterd.activation import Endpoint
    from greeterd.log import Log
    from greeterd.speedups import sockets

# The client gave up between the kernel queueing it and accept(): nothing to serve.
_CLIENT_GONE = frozenset({errno.ECONNABORTED, errno.EPROTO})
_IN = select.EPOLLIN


class Listeners:
    """The listening and datagram sockets among ``endpoints``, watched in ``epoll`` from the
    start, and the wakeup pipe once watch_wakeup_fd() names it; ``log`` takes the accept()
    failures, ``clock`` times the back-off."""

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        epoll: select.epoll,
        log: Log,
        clock: Callable[[], float],
    ) -> None:
        self._epoll, self._log, self._clock = epoll, log, clock
        #: (accept call, type of the sockets it accepts, whether they speak Varlink) by fd
        self.accepting = {
            e.sock.fileno(): (accepter(e.sock), e.sock.type, e.kind == VARLINK)
            for e in endpoints
            if e.kind in (LISTENER, VARLINK)
        }
        self.datagram_socks: dict[int, sockets.socket] = {
            e.sock.fileno(): e.sock for e in endpoints if e.kind == DATAGRAM
        }
        self.gate = AcceptGate()  # for connections: a datagram needs no fd
        self.wakeup_fd, self._signal_names = -1, dict[int, str]()
        self._watch(self.accepting, True)
        self._watch(self.datagram_socks, True)

    def close_gate(self, reason: str) -> None:
        """Stop taking new clients, for ``reason`` (lifecycle.py names each): they wait in the
        listen backlog."""
        if self.gate.close(reason):
            self._watch(self.accepting, False)

    def reopen_gate(self, reason: str) -> None:
        """``reason`` is over: take new clients again if no other reason keeps the gate shut."""
        if self.gate.reopen(reason):
            self._watch(self.accepting, True)

    def back_off_over(self, now: float) -> None:
        """Take new clients again if an accept() back-off has run its time (and nothing else
        keeps the gate shut)."""
        if self.gate.back_off_over(now):
            self._watch(self.accepting, True)

    def stop(self) -> None:
        """Take nothing new for good, connections nor datagrams: the server is draining."""
        self.close_gate(STOPPING)
        self._watch(self.datagram_socks, False)

    def accept_failed(self, error: OSError, waiting: int) -> bool:
        """Whether the accept loop goes on after ``error``: yes if the client had gone. Out of
        fds or memory: log once per burst and pause (no); anything else is a real fault.
        ``waiting`` is how many clients the server holds, for the log line."""
        if error.errno in _CLIENT_GONE:
            return True
        if error.errno not in OUT_OF_RESOURCES:
            raise error
        if not self.gate.failures:
            self._log.warning(
                f"accept() failed: {error.strerror}; pausing {ACCEPT_BACKOFF:g}s at a time "
                f"until it works again ({waiting} clients waiting)",
                errno=errno.errorcode.get(error.errno or 0, error.errno),
            )
        if self.gate.back_off(self._clock() + ACCEPT_BACKOFF):
            self._watch(self.accepting, False)
        return False

    def accepting_again(self) -> None:
        """An accept() worked after some failed: say so, once per burst."""
        self._log.notice(f"accepting again after {self.gate.accepted()} failed accept()s")

    def watch_wakeup_fd(self, fd: int, signal_names: dict[int, str]) -> None:
        """The server stops (drains and returns) when ``fd`` becomes readable:
        signal.set_wakeup_fd's pipe. The stop is logged with the signal's name in
        ``signal_names``."""
        self.wakeup_fd, self._signal_names = fd, signal_names
        self._epoll.register(fd, _IN)

    def stop_signal(self) -> str | None:
        """The name of the signal that woke the loop (the last, if several came), or None at
        the pipe's end of file (its write end closed)."""
        received = syscalls.read(self.wakeup_fd, 64)
        if not received:
            return None
        number = received[-1]
        return self._signal_names.get(number, f"signal {number}")

    def _watch(self, endpoints: dict[int, Any], watching: bool) -> None:
        """Watch these sockets in epoll, or stop: new clients then wait in the kernel (the
        listen backlog, the socket's receive queue)."""
        for fd in endpoints:
            if watching:
                self._epoll.register(fd, _IN)
            else:
                self._epoll.unregister(fd)
