"""Clients of the line protocol, on stream and seqpacket sockets: read a name, answer, close;
and what every connection shares, whatever it speaks: answer(), the wait (HeldClients), peer
credentials.

server.py hands each accepted client to LineClients.serve(). Nearly every client has sent its
name by then, so it is answered at once: recv(), answer(), send(), close(), the fast path.
One that has not waits in the server's epoll set as a bare fd (HeldClients.hold()) until the
rest arrives (read()) or its read deadline passes (time_out()). Varlink connections
(sessions.py) wait the same way, between their calls too.

answer() is the one place a request becomes a reply: a greeting, counted, or a refusal,
counted and logged (tally.py). Datagrams (datagrams.py) and Varlink's Greet (sessions.py) are
answered by it too, each with its own parse and reply formats, so every kind of client is
refused for the same reasons with the same log line.

Peer credentials live here, with the connected sockets they are asked of: a client's are asked
only when it starts to wait (its uid: whose share it takes), is refused or is logged at debug
level, never on the fast path. A datagram carries its sender's instead (SCM_CREDENTIALS),
which datagrams.py reads with ucred().
"""

from __future__ import annotations

import select

from greeterd.lifecycle import AT_CAP
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
from greeterd.waiting import UserShares, WaitingClients

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
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

_IN = select.EPOLLIN
# One deadline lane per timeout length (waiting.py says why): the read timeout for every
# client's first request, and the one deadline renewed, Varlink's between calls.
_READ_LANE, _RENEWED_LANE = 0, 1

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
    whatever it sent (HeldClients.hold() says who)."""
    raise ProtocolError(TOO_MANY_WAITING)


#: Fds greeterd holds besides its clients' (listeners, epoll, the wake-up pipe, the journal,
#: a module being imported) and a margin: what fit_to_open_files() keeps out of the places.
SPARE_FDS = 32


class HeldClients:
    """The connections the server waits for, whatever they speak: a line client still sending
    its name, a Varlink connection (sessions.py) until its next call. Each is a bare fd in the
    loop's epoll set and in waiting.py's tables (which say why), with its deadline, and takes
    one of the server's max_connections places: at the cap the accept gate closes, and new
    clients wait in the listen backlog until one is released.

    Each user (uid) may take at most ``max_clients_per_uid`` places (server.MAX_CLIENTS_PER_UID):
    past it, that user's next client that would wait is refused at once (TOO_MANY_WAITING)
    instead of taking a place, so one user cannot fill the cap and keep every other user's
    clients in the backlog. Only clients that wait are counted: one whose name came with it is
    answered at once, whoever sent it. The clients of ``exempt_uids`` are not counted at all
    (the daemon exempts root and its own uid: daemon.share_exempt_uids() says why)."""

    def __init__(
        self, server: Server, max_clients_per_uid: int, exempt_uids: Collection[int]
    ) -> None:
        #: The bookkeeping (waiting.py): is this fd waited for, whose deadline has passed.
        self.clients = WaitingClients(lanes=2)
        #: How many clients each user has waiting, and whether one more may wait (waiting.py).
        self.shares = UserShares(max_clients_per_uid, exempt_uids)
        self._listeners = server.listeners  # its accept gate: closed at the cap
        self._epoll, self._clock, self._timers = server.epoll, server.clock, server.timers
        self._read_timeout, self._max_connections = server.read_timeout, server.max_connections

    def hold(self, sock: sockets.socket, received: bytes, message_mode: bool) -> Peer | None:
        """Wait in epoll for the rest of a client's request, until the read timeout from now,
        and return None. Only the fd is kept (waiting.py says why); at max_connections the
        accept gate closes. A client whose user already has its share waiting is not held: its
        credentials are returned, for the caller to refuse it (TOO_MANY_WAITING) and close.
        The credentials are asked here, once per client that waits, never on the fast path."""
        peer = peer_credentials(sock)
        uid = peer[1]
        if not self.shares.take(uid):
            return peer
        sock.setblocking(False)
        fd = sock.detach()
        deadline = self._clock() + self._read_timeout
        self.clients.add(fd, deadline, message_mode, received, _READ_LANE, uid=uid)
        self._epoll.register(fd, _IN)
        if len(self.clients) >= self._max_connections:
            self._listeners.close_gate(AT_CAP)  # reopened by release(): clients wait in the backlog
        return None

    def renew(self, fd: int, seconds: float) -> None:
        """Wait ``seconds`` more for a client held, from now (Varlink's next call)."""
        now = self._clock()
        self.clients.renew(fd, now + seconds, _RENEWED_LANE)
        self._timers.activity(now)

    def release(self, fd: int) -> None:
        """Stop waiting for a client that is answered or gone (closing its socket removes it
        from the epoll set), and give its place back to its user's share."""
        self.shares.give_back(self.clients.remove(fd))
        self._timers.activity(self._clock())
        if len(self.clients) < self._max_connections:
            self._listeners.reopen_gate(AT_CAP)

    def fit_to_open_files(self, limit: int) -> None:
        """Hold each user's share to its part of the clients greeterd can really hold: with
        ``limit`` open files (RLIMIT_NOFILE; a container may cap it at 1024), accept() fails
        with EMFILE long before max_connections, and a share above the fds would let one user
        take them all. The share is never raised."""
        places = min(self._max_connections, max(limit - SPARE_FDS, 4))
        ratio = self.shares.share / self._max_connections
        self.shares.share = min(self.shares.share, max(1, int(places * ratio)))


class LineClients:
    """Answers line-protocol clients: those just accepted, and those the server waits for."""

    def __init__(self, server: Server) -> None:
        self._tally = server.tally
        self._log = server.log
        self._waiting = server.held.clients
        self._hold = server.held.hold
        self._release = server.held.release
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
        # _finish(), written out: the call alone costs the fast path about 3% more instructions
        # per greeting (callgrind). A reply on a fresh socket always fits the send buffer, so
        # this never blocks; a client that already left (EPIPE, ECONNRESET) is only counted.
        if self._debug:
            self._log_greeting(sock, reply)
        try:
            sock.send(reply, _MSG_DONTWAIT)
        except OSError:
            self._tally.lost += 1
        sock.close()

    def _wait_for(self, sock: sockets.socket, received: bytes, message_mode: bool) -> None:
        """Have HeldClients wait for the rest of the request; one past its user's share is
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
    pid, uid, gid = memoryview(raw).cast("i")  # three C ints, in the machine's byte order
    return pid, uid, gid


def describe_peer(sock: sockets.socket) -> str:
    """'pid 42 uid 1000', for debug lines."""
    pid, uid, _ = peer_credentials(sock)
    return f"pid {pid} uid {uid}"
