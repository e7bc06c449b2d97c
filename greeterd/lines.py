"""Clients of the line protocol, on stream and seqpacket sockets: read a name, answer, close.

server.py hands each accepted client to LineClients.serve(). Nearly every client has sent its
name by then, so it is answered at once: recv(), answer(), send(), close(), the fast path.
One that has not waits in the server's epoll set as a bare fd (server.hold()) until the rest
arrives (read()) or its read deadline passes (time_out()).

answer() is the one place a request becomes a reply: a greeting, counted, or a refusal,
counted and logged (tally.py). Datagrams (datagrams.py) and Varlink's Greet (sessions.py) are
answered by it too, each with its own parse and reply formats, so every kind of client is
refused for the same reasons with the same log line.

Peer credentials live here, with the connected sockets they are asked of: a client's are asked
only when it is refused or logged at debug level, never on the fast path. A datagram carries
its sender's instead (SCM_CREDENTIALS), which datagrams.py reads with ucred().
"""

from __future__ import annotations

import sys

from greeterd.log import DEBUG
from greeterd.protocol import (
    MAX_REQUEST_BYTES,
    MESSAGE_READ_BYTES,
    REPLY_PREFIX,
    TIMED_OUT,
    TOO_MANY_WAITING,
    ProtocolError,
    describe,
    find_request,
    format_error,
    format_reply,
    parse_message,
    parse_name,
)
from greeterd.speedups import sockets

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from greeterd.server import Server
    from greeterd.tally import Tally

    Request = TypeVar("Request", bytes, str)
    Reply = TypeVar("Reply")
    #: (pid, uid, gid)
    Peer = tuple[int, int, int]

#: (pid, uid, gid) of a peer whose credentials the kernel did not give.
UNKNOWN_PEER = (-1, -1, -1)

_MSG_DONTWAIT = sockets.MSG_DONTWAIT
_AF_UNIX = sockets.AF_UNIX
_SOCK_STREAM = sockets.SOCK_STREAM
_SOCK_SEQPACKET = sockets.SOCK_SEQPACKET

#: The line protocol's replies: ``Hello, NAME`` or ``error: REASON``, one line each.
LINE_REPLIES = (format_reply, format_error)


def answer(
    tally: Tally,
    parse: Callable[[Request], str],
    request: Request,
    peer: Peer | sockets.socket,
    replies: tuple[Callable[[str], Reply], Callable[[str], Reply]],
) -> Reply:
    """The reply to one request, whatever kind of client sent it: the one place a request
    becomes a greeting, counted, or a refusal, counted and logged as tally.refusal() logs it.

    ``parse`` takes the name out of ``request`` or raises ProtocolError with the reason; any
    other exception (_NotWhole) passes through with nothing counted. ``replies`` write the
    greeting and the refusal in the client's protocol (LINE_REPLIES, varlink.GREET_REPLIES).
    ``peer`` is the client's connected socket, asked for its credentials only if it is refused,
    or the credentials it sent."""
    greeting, refusal = replies
    try:
        name = parse(request)
    except ProtocolError as error:
        credentials = peer if isinstance(peer, tuple) else peer_credentials(peer)
        tally.refusal(credentials, error.reason, request)
        return refusal(error.reason)
    tally.greeted += 1
    return greeting(name)


class _NotWhole(Exception):
    """The request line has not ended yet: wait for the rest."""


def _line(buffer: bytes) -> str:
    """The name in a stream client's request line; _NotWhole until the line ends."""
    line = find_request(buffer, False)
    if line is None:
        raise _NotWhole
    return parse_name(line)


def _last_line(buffer: bytes) -> str:
    """The name in what a stream client sent before it half-closed: all of it is the line."""
    return parse_name(find_request(buffer, True) or b"")  # never None at EOF


def _time_is_up(received: bytes) -> str:
    """A client's read deadline passed before its request was whole: refused."""
    raise ProtocolError(TIMED_OUT)


def past_share(received: bytes | str) -> str:
    """A client that would wait while its user has its share waiting already: refused,
    whatever it sent (server.hold() says who)."""
    raise ProtocolError(TOO_MANY_WAITING)


class LineClients:
    """Answers line-protocol clients: those just accepted, and those the server waits for."""

    def __init__(self, server: Server) -> None:
        self._tally = server.tally
        self._log = server.log
        self._waiting = server.waiting_clients
        self._hold = server.hold
        self._release = server.release
        self._debug = server.log.enabled(DEBUG)

    def serve(self, sock: sockets.socket, message_mode: bool) -> None:
        """Answer a client just accepted if its request is there, else wait for the rest."""
        wanted = MESSAGE_READ_BYTES if message_mode else MAX_REQUEST_BYTES
        try:
            data = sock.recv(wanted, _MSG_DONTWAIT)
        except BlockingIOError:
            self._wait_for(sock, b"", message_mode)
            return
        except OSError:
            self._lose(sock)
            return
        if not data:  # EOF (or an empty message) without a word: nobody to answer
            self._lose(sock)
            return
        parse = parse_message if message_mode else _line
        try:
            reply = answer(self._tally, parse, data, sock, LINE_REPLIES)
        except _NotWhole:
            self._wait_for(sock, data, message_mode)
            return
        if self._debug:
            self._log_greeting(sock, reply)
        # A reply on a fresh socket always fits the send buffer, so this never blocks; a client
        # that already left (EPIPE, ECONNRESET) is only counted.
        try:
            sock.send(reply, _MSG_DONTWAIT)
        except OSError:
            self._tally.lost += 1
        sock.close()

    def _wait_for(self, sock: sockets.socket, received: bytes, message_mode: bool) -> None:
        """Have the server wait for the rest of the request; one past its user's share is
        refused at once instead."""
        peer = self._hold(sock, received, message_mode)
        if peer is not None:
            self._finish(sock, answer(self._tally, past_share, received, peer, LINE_REPLIES))

    def read(self, fd: int) -> None:
        """Read more of a waiting client's request; answer it once it is whole."""
        sock, received = self._socket_for(fd), self._waiting.received(fd)
        message_mode = sock.type != _SOCK_STREAM
        wanted = MESSAGE_READ_BYTES if message_mode else MAX_REQUEST_BYTES - len(received)
        try:
            data = sock.recv(wanted)
        except BlockingIOError:
            sock.detach()  # still waiting: the fd stays open
            return
        except OSError:
            self._release(fd)
            self._lose(sock)
            return
        received += data
        if not received:
            self._release(fd)
            self._lose(sock)
            return
        parse: Callable[[bytes], str]
        if message_mode:
            parse = parse_message
        elif data:
            parse = _line
        else:  # the client half-closed: what it sent is its whole line
            parse = _last_line
        try:
            reply = answer(self._tally, parse, received, sock, LINE_REPLIES)
        except _NotWhole:
            self._waiting.set_received(fd, received)
            sock.detach()
            return
        self._release(fd)
        self._finish(sock, reply)

    def time_out(self, fd: int) -> None:
        """Refuse a waiting client whose read deadline has passed."""
        sock, received = self._socket_for(fd), self._waiting.received(fd)
        self._release(fd)
        reply = answer(self._tally, _time_is_up, received, sock, LINE_REPLIES)
        self._finish(sock, reply)

    def _socket_for(self, fd: int) -> sockets.socket:
        """A socket object for a waiting client's fd (no dup(): closing it closes the fd)."""
        kind = _SOCK_SEQPACKET if self._waiting.message_mode(fd) else _SOCK_STREAM
        return sockets.socket(_AF_UNIX, kind, 0, fd)

    def _finish(self, sock: sockets.socket, reply: bytes) -> None:
        """serve()'s last steps, for a client that waited: send the reply, then close."""
        if self._debug:
            self._log_greeting(sock, reply)
        try:
            sock.send(reply, _MSG_DONTWAIT)
        except OSError:
            self._tally.lost += 1
        sock.close()

    def _lose(self, sock: sockets.socket) -> None:
        self._tally.lost += 1
        if self._debug:
            self._log.debug(f"client left before sending a name ({describe_peer(sock)})")
        sock.close()

    def _log_greeting(self, sock: sockets.socket, reply: bytes) -> None:
        if reply.startswith(REPLY_PREFIX):  # the name, as answer() greeted it
            name = reply[len(REPLY_PREFIX) : -1].decode()
            self._log.debug(f"greeted {describe(name)} ({describe_peer(sock)})")


def peer_credentials(sock: sockets.socket) -> Peer:
    """(pid, uid, gid) of a connected client, from SO_PEERCRED, or UNKNOWN_PEER."""
    try:
        return ucred(sock.getsockopt(sockets.SOL_SOCKET, sockets.SO_PEERCRED, 12))
    except OSError:
        return UNKNOWN_PEER


def ucred(raw: bytes) -> Peer:
    """(pid, uid, gid) from a struct ucred (SO_PEERCRED, SCM_CREDENTIALS)."""
    pid, uid, gid = (int.from_bytes(raw[i : i + 4], sys.byteorder, signed=True) for i in (0, 4, 8))
    return pid, uid, gid


def describe_peer(sock: sockets.socket) -> str:
    """'pid 42 uid 1000', for debug lines."""
    pid, uid, _ = peer_credentials(sock)
    return f"pid {pid} uid {uid}"
