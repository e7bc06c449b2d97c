"""Datagram sockets: one datagram in, one datagram back to its sender, no connection.

Each is answered by lines.answer(), as every kind of client is, with the sender's
credentials from its SCM_CREDENTIALS. A datagram takes no fd and holds no place, so neither
the client cap nor an EMFILE back-off stops them (those close the server's accept gate, which
is for connections); only stopping does. The server imports this module only when systemd
passes a datagram socket.
"""

from __future__ import annotations

import sys

from greeterd import protocol
from greeterd.lines import LINE_REPLIES, UNKNOWN_PEER, answer, ucred
from greeterd.speedups import sockets, syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from greeterd.server import Server

#: Datagrams answered per wake-up before the loop serves the other endpoints.
DATAGRAMS_PER_WAKEUP = 256

# A datagram's ancillary data: the sender's credentials (struct ucred: pid, uid, gid), and
# room for the most fds a client can pass with it (SCM_MAX_FD, 253), each closed at once by
# sender_credentials(). The kernel installs in greeterd every passed fd that fits in this
# buffer, and one left open would stay until greeterd ran out of fds; a buffer with no room
# for them drops them only by accident of its size, of SO_PASSCRED, and of the order the kernel
# writes credentials and fds in.
_ANCILLARY_SPACE = sockets.CMSG_SPACE(12) + sockets.CMSG_SPACE(253 * 4)
_UNBOUND = "datagram from an unbound socket: no reply possible"


class Datagrams:
    """The datagram sockets greeterd serves (listeners.py has them by fd)."""

    def __init__(self, server: Server) -> None:
        self.socks = server.listeners.datagram_socks
        self._server = server  # whether it is stopping
        self._tally, self._log = server.tally, server.log
        self._timers, self._clock = server.timers, server.clock

    def receive(self, fd: int) -> None:
        """Answer the datagrams waiting on ``fd`` unless the server is stopping: no connection,
        so neither the cap nor a back-off stops them; only stopping does. Any that arrived
        count as activity (the idle exit waits)."""
        if not self._server.stopping and self._answer(fd):
            self._timers.activity(self._clock())

    def _answer(self, fd: int) -> int:
        """Answer up to DATAGRAMS_PER_WAKEUP datagrams waiting on ``fd``; return how many
        arrived."""
        sock, tally = self.socks[fd], self._tally
        for count in range(DATAGRAMS_PER_WAKEUP):
            try:
                message, ancillary, _, sender = sock.recvmsg(
                    protocol.MESSAGE_READ_BYTES, _ANCILLARY_SPACE, sockets.MSG_DONTWAIT
                )
            except BlockingIOError:
                return count
            except OSError as error:
                self._log.warning(f"receiving a datagram failed: {error.strerror}")
                return count
            peer = sender_credentials(ancillary)
            if not sender:  # an unbound client has no address to reply to: the log only
                tally.refusal(peer, _UNBOUND, message)
                continue
            reply = answer(tally, protocol.parse_message, message, peer, LINE_REPLIES)
            try:
                sock.sendto(reply, sockets.MSG_DONTWAIT, sender)
            except OSError:
                tally.lost += 1  # gone, or its receive queue is full
        return DATAGRAMS_PER_WAKEUP


def sender_credentials(ancillary: list[tuple[int, int, bytes]]) -> tuple[int, int, int]:
    """(pid, uid, gid) from a datagram's SCM_CREDENTIALS, or unknown ones; closes every fd
    the sender passed (SCM_RIGHTS): greeterd has no use for them (see _ANCILLARY_SPACE)."""
    peer = UNKNOWN_PEER
    for level, kind, data in ancillary:
        if level != sockets.SOL_SOCKET:
            continue
        if kind == sockets.SCM_RIGHTS:
            for start in range(0, len(data) - len(data) % 4, 4):
                syscalls.close(int.from_bytes(data[start : start + 4], sys.byteorder, signed=True))
        elif kind == sockets.SCM_CREDENTIALS and len(data) >= 12:
            peer = ucred(data)
    return peer
