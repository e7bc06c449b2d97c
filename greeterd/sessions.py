"""Varlink connections in the loop: many calls per connection, replies as the calls arrive.

varlink.py is the protocol (bytes in, replies out); this module is its I/O: it reads what a
client sent, writes the replies without waiting, and reports greetings and refusals to the
tally. The server keeps each connection's deadline and its place under the client cap, as for
any client, and imports this module (and json, through varlink.py) only when a Varlink socket
is served.
"""

from __future__ import annotations

from greeterd import varlink
from greeterd.speedups import sockets, syscalls
from greeterd.tally import peer_credentials

TYPE_CHECKING = False
if TYPE_CHECKING:
    from greeterd.tally import Tally

#: Bytes read from a Varlink connection at a time: a few calls, or most of the largest one.
VARLINK_READ_BYTES = 16384


class VarlinkSessions:
    """The open Varlink connections by fd, each with what it sent of a call not yet whole."""

    def __init__(self, tally: Tally) -> None:
        self._connections: dict[int, varlink.Connection] = {}
        self._tally = tally
        #: Bytes read from every connection so far: what a stop measures its budget in.
        self.bytes_read = 0

    def __contains__(self, fd: int) -> bool:
        return fd in self._connections

    def fds(self) -> list[int]:
        return list(self._connections)

    def open(self, fd: int) -> None:
        """A client connected: its calls are read from now on."""
        self._connections[fd] = varlink.Connection()

    def converse(self, fd: int) -> int | None:
        """Read what the client sent and answer every call that is whole. Return how many
        calls were whole (0: only part of one arrived), or None when the connection is over:
        the client left, asked to close, or cannot take its replies (the caller then calls
        close())."""
        sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM, 0, fd)
        try:
            return self._answer(fd, sock)
        finally:
            sock.detach()  # the fd stays open: close() closes it

    def _answer(self, fd: int, sock: sockets.socket) -> int | None:
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
        received = connection.receive(data)
        self._tally.greeted += received.greeted
        if received.refused:
            peer = peer_credentials(sock)
            for reason, name in received.refused:
                self._tally.refusal(peer, reason, name)
        if not _send_whole(fd, received.replies) or connection.closing:
            return None
        return received.calls

    def close(self, fd: int) -> None:
        del self._connections[fd]
        syscalls.close(fd)


def _send_whole(fd: int, replies: bytes) -> bool:
    """Send the replies whole without waiting; False when the client cannot take them (it
    does not read, or left): greeterd never queues replies, so memory stays bounded."""
    if not replies:
        return True
    try:
        return syscalls.write(fd, replies) == len(replies)
    except OSError:
        return False
