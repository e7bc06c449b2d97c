"""Varlink connections in the loop: many calls per connection, replies as the calls arrive.

varlink.py is the protocol (bytes in, replies out); this module is its I/O: it reads what a
client sent, has each Greet answered by lines.answer() (as every kind of client is), and
writes the replies without waiting. The server waits for each connection as for any client
(lines.HeldClients), with its deadline and its place under the client cap; between calls the
deadline is VARLINK_IDLE_TIMEOUT. The server imports this module (and json, through
varlink.py) only when a Varlink socket is served.
"""

from __future__ import annotations

from greeterd import varlink
from greeterd.lines import answer, past_share
from greeterd.protocol import parse_text_name
from greeterd.speedups import sockets, syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from greeterd.server import Server

#: Bytes read from a Varlink connection at a time: a few calls, or most of the largest one.
VARLINK_READ_BYTES = 16384

#: Seconds a Varlink connection has after a whole call to make its next one, else greeterd
#: closes it (its first call has server.READ_TIMEOUT from accept). It holds one of the
#: MAX_CONNECTIONS places meanwhile; a client that calls again within it keeps its connection
#: (varlinkctl makes its calls at once, then leaves). Bytes that complete no call do not
#: extend it.
VARLINK_IDLE_TIMEOUT = 10.0

#: Bytes Varlink connections may send, in all, that a stop still reads to answer the calls
#: sent before it: 1 MiB (about a quarter second of parsing here; the last read may pass it by
#: up to VARLINK_READ_BYTES) covers the connections accepted in the stopping wake-up and the
#: rest of any read, and keeps the stop well inside the unit's TimeoutStopSec however much
#: clients queued. Calls past it are not answered: their connections are closed, as at any
#: stop.
STOP_READ_BYTES = 1024 * 1024


class VarlinkSessions:
    """The open Varlink connections by fd, each with what it sent of a call not yet whole."""

    def __init__(self, server: Server, idle_timeout: float | None = None) -> None:
        self._connections: dict[int, varlink.Connection] = {}
        self._held = server.held
        self._tally = server.tally
        self._idle_timeout = VARLINK_IDLE_TIMEOUT if idle_timeout is None else idle_timeout
        #: Bytes read from every connection so far: what a stop measures its budget in.
        self.bytes_read = 0

    def __contains__(self, fd: int) -> bool:
        return fd in self._connections

    def open(self, fd: int) -> None:
        """A client connected: wait for its calls. One past its user's share is refused at
        once: before any call of its arrives, one TooManyClients error, which a client that
        calls at once (varlinkctl does) reads as the answer to its first call, then close."""
        sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM, 0, fd)
        peer = self._held.hold(sock, b"", False)
        if peer is None:
            self._connections[fd] = varlink.Connection()
            return
        refusal = answer(self._tally, past_share, "", peer, varlink.SHARE_REPLIES)
        _send_whole(fd, varlink.encode(refusal))
        sock.close()

    def converse(self, fd: int) -> None:
        """Answer what a client sent, then wait for its next call (until the idle timeout), or
        end the connection."""
        calls = self._answer_calls(fd)
        if calls is None:
            self.end(fd)
        elif calls:
            # Only a whole call earns more time. Bytes that complete none keep the deadline
            # the connection had, so a client that sends a call a byte at a time is cut off
            # at it, as a line client is (bounded time per client).
            self._held.renew(fd, self._idle_timeout)

    def end(self, fd: int) -> None:
        """Close a connection: it is over, idle past its deadline, or the server stops."""
        self._held.release(fd)
        del self._connections[fd]
        syscalls.close(fd)

    def stop(self) -> None:
        """End every connection: an idle one would hold the drain for up to the idle timeout
        (clients reconnect, and systemd starts the next instance). First the calls they already
        sent are answered, within STOP_READ_BYTES read in all: one accepted in this wake-up has
        not been read yet, and a read takes at most VARLINK_READ_BYTES. Reads that find
        nothing cost nothing, so idle connections cannot use the budget up."""
        budget_end = self.bytes_read + STOP_READ_BYTES
        for fd in list(self._connections):
            while self.bytes_read < budget_end:
                if not self._answer_calls(fd):  # None (over) or 0 (nothing whole)
                    break
            self.end(fd)

    def _answer_calls(self, fd: int) -> int | None:
        """Read what the client sent and answer every call that is whole. Return how many
        calls were whole (0: only part of one arrived), or None when the connection is over:
        the client left, asked to close, or cannot take its replies."""
        sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM, 0, fd)
        try:
            return self._read(fd, sock)
        finally:
            sock.detach()  # the fd stays open: end() closes it

    def _read(self, fd: int, sock: sockets.socket) -> int | None:
        try:
            data = sock.recv(VARLINK_READ_BYTES)
        except BlockingIOError:
            return 0
        except OSError:
            data = b""  # reset: the same as leaving
        if not data:  # the client left: nothing owed
            return None
        self.bytes_read += len(data)
        connection = self._connections[fd]

        def greet(name: str) -> dict[str, Any]:
            return answer(self._tally, parse_text_name, name, sock, varlink.GREET_REPLIES)

        received = connection.receive(data, greet)
        if not _send_whole(fd, received.replies) or connection.closing:
            return None
        return received.calls


def _send_whole(fd: int, replies: bytes) -> bool:
    """Send the replies whole without waiting; False when the client cannot take them (it
    does not read, or left): greeterd never queues replies, so memory stays bounded."""
    if not replies:
        return True
    try:
        return syscalls.write(fd, replies) == len(replies)
    except OSError:
        return False
