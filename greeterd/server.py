"""The accept-and-answer loop: one thread, epoll, and a fast path for clients that are ready.

It serves every kind of endpoint activation.py adopts: listening stream and seqpacket sockets
(Accept=no), datagram sockets, listening sockets whose clients speak Varlink, and a single
connection passed with Accept=yes (then it returns once that client is served). Each concern
has its module: this one holds the loop, the accept loop every listening socket shares, and the
line protocol's clients; datagrams.py answers datagrams and sessions.py Varlink calls (both
imported only when such a socket is served); lifecycle.py decides when timers fall due and
whether the accept gate is open; waiting.py keeps the clients still sending; tally.py counts
and logs what was done.

Shape, chosen for throughput and cold-start time (README, Performance): no asyncio (its import
alone costs several interpreter start-ups, and start_unix_server() would call listen() again on
systemd's socket), one epoll set, and a fast path that answers right after accept() when the
name has already arrived, which is how nearly every client behaves. Only clients that are
slow to send wait in epoll, kept as bare fds in waiting.py's tables with their deadline.

Bounds per client (named below): READ_TIMEOUT from accept to a whole request, at most
protocol.MAX_REQUEST_BYTES buffered, MAX_CONNECTIONS open at once. One client's fault becomes
an error line, a log line and a close, never an exception out of the loop.
"""

from __future__ import annotations

import errno
import select
import time

from greeterd import protocol
from greeterd.activation import CONNECTION, DATAGRAM, LISTENER, VARLINK
from greeterd.lifecycle import AT_CAP, STOPPING, AcceptGate, Timers
from greeterd.log import DEBUG
from greeterd.protocol import ProtocolError
from greeterd.speedups import SIGINT, SIGTERM, accepter, sockets, syscalls
from greeterd.tally import Tally, describe_peer, peer_credentials
from greeterd.waiting import WaitingClients

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from greeterd.activation import Endpoint
    from greeterd.datagrams import Datagrams
    from greeterd.log import Log
    from greeterd.sessions import VarlinkSessions

#: Seconds a client has, from accept(), to send its whole name. A local client that has a name
#: sends it in microseconds; this only ends clients that hang (and bounds a drain on SIGTERM).
READ_TIMEOUT = 5.0

#: Connections waiting for their name at once. Past it greeterd stops accepting and new clients
#: wait in the kernel's listen backlog (never refused). Worst-case memory is about
#: MAX_CONNECTIONS x (MAX_REQUEST_BYTES + about 100 B of bookkeeping), about 9 MiB.
MAX_CONNECTIONS = 8192

#: Connections accepted per wake-up before the loop serves the others: bounds how long clients
#: that are mid-request wait behind a flood of new ones.
ACCEPT_BATCH = 256

#: Events taken from epoll per wake-up. Python's default (1023) builds a list of up to 1023
#: tuples each time thousands of idle clients hang up at once; smaller lists leave less memory
#: behind in the allocator's free lists once they are gone.
EVENTS_PER_POLL = 256

#: Seconds accepting pauses after the kernel runs out of fds or memory (EMFILE, ENFILE,
#: ENOBUFS, ENOMEM): the pending connection stays readable, so retrying at once would spin at
#: 100% CPU. trio's serve_listeners uses the same 100 ms.
ACCEPT_BACKOFF = 0.1

#: Seconds between STATUS= updates to systemd while greetings are being served.
STATUS_INTERVAL = 1.0

#: Seconds a Varlink connection has after a whole call to make its next one, else greeterd
#: closes it (its first call has READ_TIMEOUT from accept). It holds one of the
#: MAX_CONNECTIONS places meanwhile; a client that calls again within it keeps its connection
#: (varlinkctl makes its calls at once, then leaves). Bytes that complete no call do not
#: extend it.
VARLINK_IDLE_TIMEOUT = 10.0

#: Bytes Varlink connections may send, in all, that a stop still reads to answer the calls
#: sent before it: 1 MiB (about a quarter second of parsing here; the last read may pass it by
#: up to sessions.VARLINK_READ_BYTES) covers the connections accepted in the stopping wake-up
#: and the rest of any read, and keeps the stop well inside the unit's TimeoutStopSec however
#: much clients queued. Calls past it are not answered: their connections are closed, as at
#: any stop.
STOP_READ_BYTES = 1024 * 1024

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# The client gave up between the kernel queueing it and accept(): nothing to serve.
_CLIENT_GONE = frozenset({errno.ECONNABORTED, errno.EPROTO})

_MSG_DONTWAIT = sockets.MSG_DONTWAIT
_AF_UNIX = sockets.AF_UNIX
_SOCK_STREAM = sockets.SOCK_STREAM
_SOCK_SEQPACKET = sockets.SOCK_SEQPACKET
_IN = select.EPOLLIN
_MESSAGE_BYTES = protocol.MESSAGE_READ_BYTES
_VARLINK_IDLE_LANE = 1  # the waiting table's lane for VARLINK_IDLE_TIMEOUT (0: READ_TIMEOUT)
#: The signals that make greeterd drain and exit (daemon.py routes them to the wakeup fd), with
#: the names the stop is logged with; the signal module's enum would cost start-up time.
STOP_SIGNALS: dict[int, str] = {SIGTERM: "SIGTERM", SIGINT: "SIGINT"}


class Listening:
    """A listening socket as the accept loop uses it: its accept call, the type of the sockets
    it accepts, and whether its clients speak Varlink (else the line protocol)."""

    __slots__ = ("accept", "kind", "message_mode", "varlink")

    def __init__(self, sock: sockets.socket, varlink: bool) -> None:
        self.accept = accepter(sock)
        self.kind = sock.type
        self.message_mode = sock.type != _SOCK_STREAM
        self.varlink = varlink


class Server:
    """Greets clients on the given endpoints until told to stop, then drains.

    ``notify`` sends sd_notify(3) lines (a no-op outside systemd). ``exit_idle_time`` > 0 makes
    the server stop once nothing has happened for that long; only pass it when systemd can
    start greeterd again on the next connection. ``watchdog_interval`` is how often to send
    WATCHDOG=1.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        log: Log,
        notify: Callable[[str], object],
        *,
        exit_idle_time: float = 0.0,
        watchdog_interval: float | None = None,
        read_timeout: float = READ_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        varlink_idle_timeout: float = VARLINK_IDLE_TIMEOUT,
    ) -> None:
        self.log = log
        self.notify = notify
        self.read_timeout = read_timeout
        self.varlink_idle_timeout = varlink_idle_timeout
        self.max_connections = max_connections
        self.clock = time.monotonic
        self.tally = Tally(log, self.clock)
        self._reported = (0, 0)  # (greeted, refused) in the last STATUS=
        self.stopping = False
        self._listening = {
            e.sock.fileno(): Listening(e.sock, e.kind == VARLINK)
            for e in endpoints
            if e.kind in (LISTENER, VARLINK)
        }
        self._handed_over = [e for e in endpoints if e.kind == CONNECTION]
        self._sessions: VarlinkSessions | None = None
        if any(e.kind == VARLINK for e in endpoints):
            from greeterd.sessions import VarlinkSessions  # noqa: PLC0415 (imports json)

            self._sessions = VarlinkSessions(self.tally)
        self._datagram_socks = {e.sock.fileno(): e.sock for e in endpoints if e.kind == DATAGRAM}
        self._datagrams: Datagrams | None = None
        if self._datagram_socks:
            from greeterd.datagrams import Datagrams  # noqa: PLC0415 (only with datagrams)

            self._datagrams = Datagrams(self._datagram_socks, self.tally, log)
        # Accept=yes: nothing to accept, so the work is done when the one client is.
        self._one_shot = not (self._listening or self._datagram_socks)
        # One deadline lane per timeout length (waiting.py says why): READ_TIMEOUT for every
        # client's first request, VARLINK_IDLE_TIMEOUT for Varlink connections between calls.
        self._waiting = WaitingClients(lanes=2)
        self._epoll = select.epoll()
        self._timers = Timers(
            self.clock(),
            watchdog_interval=watchdog_interval,
            status_interval=STATUS_INTERVAL,
            exit_idle_time=exit_idle_time,
        )
        self._gate = AcceptGate()  # for connections: a datagram needs no fd
        self._accept_failures = 0
        self._wakeup_fd = -1
        self._debug = log.enabled(DEBUG)
        self._watch(self._listening, True)
        self._watch(self._datagram_socks, True)

    @property
    def greeted(self) -> int:
        return self.tally.greeted

    @property
    def refused(self) -> int:
        return self.tally.refused

    @property
    def lost(self) -> int:
        """Clients that left before an answer could reach them."""
        return self.tally.lost

    # -- the loop ---------------------------------------------------------------------------

    def run(self, then: Callable[[], object] | None = None) -> None:
        """Serve until SIGTERM (via watch_wakeup_fd) or exit-on-idle, then drain and return.

        ``then`` is start-up work the clients already queued need not wait for: it runs once
        they are served, before the loop waits for more."""
        for endpoint in self._handed_over:
            self._serve_new(endpoint.sock, endpoint.message_mode)
        self._wake_up_every_endpoint()  # whoever woke systemd up is queued: serve them first
        if then is not None:
            then()
        while True:
            now = self.clock()
            self._housekeeping(now)
            if (self.stopping or self._one_shot) and not self._waiting:
                break
            for fd, _ in self._epoll.poll(self._poll_timeout(now), EVENTS_PER_POLL):
                if fd in self._listening:
                    self._accept(fd)
                elif fd in self._waiting:
                    if self._in_session(fd):
                        self._converse(fd)
                    else:
                        self._read(fd)
                elif fd in self._datagram_socks:
                    self._receive(fd)
                elif fd == self._wakeup_fd:
                    self._on_wakeup()
        self.tally.flush()
        self._epoll.close()

    def _wake_up_every_endpoint(self) -> None:
        for fd in self._listening:
            self._accept(fd)
        for fd in self._datagram_socks:
            self._receive(fd)

    def watch_wakeup_fd(self, fd: int) -> None:
        """Stop (drain and return) when ``fd`` becomes readable: signal.set_wakeup_fd's pipe."""
        self._wakeup_fd = fd
        self._epoll.register(fd, _IN)

    def stop(self, why: str) -> None:
        """Stop accepting and finish the connections in flight; queued clients are left in the
        listen backlog for the next instance, which systemd starts on demand."""
        if self.stopping:
            return
        self.stopping = True
        self._close_gate(STOPPING)
        self._watch(self._datagram_socks, False)
        # Varlink connections end now: an idle one would hold the drain for up to
        # VARLINK_IDLE_TIMEOUT (clients reconnect, and systemd starts the next instance). First
        # the calls they already sent are answered, within STOP_READ_BYTES read in all: one
        # accepted in this wake-up has not been read yet, and a read takes at most
        # VARLINK_READ_BYTES.
        if self._sessions is not None:
            budget_end = self._sessions.bytes_read + STOP_READ_BYTES
            for fd in self._sessions.fds():
                self._answer_what_arrived(fd, budget_end)
                self._end_session(fd)
        self.notify(f"STOPPING=1\nSTATUS=Stopping ({why}); {self.status()}")
        self.log.info(f"stopping ({why}): {self.status()}")

    def _on_wakeup(self) -> None:
        received = syscalls.read(self._wakeup_fd, 64)
        if received:
            number = received[-1]
            self.stop(STOP_SIGNALS.get(number, f"signal {number}"))

    def _poll_timeout(self, now: float) -> float:
        wake = [
            due
            for due in (
                self._waiting.next_deadline(),
                self._timers.next_due(self._status_changed(), self._idle()),
                self._gate.resume_at,
                self.tally.next_due,
            )
            if due is not None
        ]
        return max(0.0, min(wake) - now) if wake else -1.0

    def _housekeeping(self, now: float) -> None:
        while (fd := self._waiting.first_expired(now)) is not None:
            if self._in_session(fd):
                self._end_session(fd)  # idle between calls: nothing owed, nothing to refuse
                continue
            sock, received = self._socket_for(fd), self._waiting.received(fd)
            self._forget(fd)
            self._refuse(sock, protocol.TIMED_OUT, received)
        if self._gate.back_off_over(now):
            self._watch(self._listening, True)
        if self._timers.watchdog_due(now):
            self.notify("WATCHDOG=1")
        if self._timers.status_due(now, self._status_changed()):
            self.notify(f"STATUS={self.status()}")
            self._reported = (self.greeted, self.refused)
        if self._timers.idle_due(now, self._idle()):
            self._exit_if_idle()
        due = self.tally.next_due
        if due is not None and now >= due:
            self.tally.summarise(now)

    def _idle(self) -> bool:
        """Nothing in flight: an idle exit would strand no one."""
        return not self.stopping and not self._waiting

    def _exit_if_idle(self) -> None:
        # Re-check: a client that connected since the last wake-up is served, not stranded.
        # One that connects after this stays queued, and systemd starts the next instance.
        before = self._timers.last_activity
        self._wake_up_every_endpoint()
        if self._waiting or self._timers.last_activity != before:
            return
        self.stop(f"idle for {self._timers.exit_idle_time:g}s")

    def _status_changed(self) -> bool:
        return self._reported != (self.greeted, self.refused)

    def status(self) -> str:
        """One line on what the server has done, for STATUS= and the log."""
        return f"{self.greeted} greeted, {self.refused} refused, {self.waiting} waiting"

    @property
    def waiting(self) -> int:
        """Clients connected and waited for: a request, or a Varlink connection's next call."""
        return len(self._waiting)

    # -- accepting: every listening socket, whatever its clients speak -----------------------

    def _watch(self, endpoints: dict[int, Any], watching: bool) -> None:
        """Watch these sockets in epoll, or stop: new clients then wait in the kernel (the
        listen backlog, the socket's receive queue)."""
        for fd in endpoints:
            if watching:
                self._epoll.register(fd, _IN)
            else:
                self._epoll.unregister(fd)

    def _close_gate(self, reason: str) -> None:
        if self._gate.close(reason):
            self._watch(self._listening, False)

    def _reopen_gate(self, reason: str) -> None:
        if self._gate.reopen(reason):
            self._watch(self._listening, True)

    def _accept(self, fd: int) -> None:
        """Accept and serve up to ACCEPT_BATCH clients: the hot path, kept flat on purpose."""
        if not self._gate.open:
            return
        listening = self._listening[fd]
        # A call that returns the bare fd; the client's socket object is made here from the
        # known family and type (speedups.py says why).
        accept, kind, message_mode = listening.accept, listening.kind, listening.message_mode
        varlink = listening.varlink
        for accepted in range(ACCEPT_BATCH):
            try:
                client, _ = accept()
            except BlockingIOError:
                if not accepted:
                    return
                break
            except OSError as error:
                if error.errno in _CLIENT_GONE:
                    continue
                self._accept_failed(error)
                break
            if self._accept_failures:
                self._accepting_again()
            if varlink:
                self._open_session(client)
            else:
                self._serve_new(sockets.socket(_AF_UNIX, kind, 0, client), message_mode)
            if not self._gate.open:  # _park() reached max_connections
                break
        self._timers.activity(self.clock())

    def _accept_failed(self, error: OSError) -> None:
        """Out of fds or memory: log once per burst and pause; anything else is a real fault."""
        if error.errno not in _OUT_OF_RESOURCES:
            raise error
        if not self._accept_failures:
            self.log.warning(
                f"accept() failed: {error.strerror}; pausing {ACCEPT_BACKOFF:g}s at a time "
                f"until it works again ({self.waiting} clients waiting)",
                errno=errno.errorcode.get(error.errno or 0, error.errno),
            )
        self._accept_failures += 1
        if self._gate.back_off(self.clock() + ACCEPT_BACKOFF):
            self._watch(self._listening, False)

    def _accepting_again(self) -> None:
        self.log.notice(f"accepting again after {self._accept_failures} failed accept()s")
        self._accept_failures = 0

    # -- the line protocol: answer at once, or wait for the rest of the request -------------

    def _serve_new(self, sock: sockets.socket, message_mode: bool) -> None:
        """Answer a new client at once if its request is there, else park it."""
        wanted = _MESSAGE_BYTES if message_mode else protocol.MAX_REQUEST_BYTES
        try:
            data = sock.recv(wanted, _MSG_DONTWAIT)
        except BlockingIOError:
            self._park(sock, b"", message_mode)
            return
        except OSError:
            self._lose(sock)
            return
        if not self._answer(sock, data, not data, message_mode):
            self._park(sock, data, message_mode)

    def _park(self, sock: sockets.socket, received: bytes, message_mode: bool) -> None:
        """Wait in epoll for the rest of a request, until the read deadline. Only the fd is
        kept (waiting.py says why); _socket_for() wraps it again when there is work."""
        sock.setblocking(False)
        fd = sock.detach()
        self._waiting.add(fd, self.clock() + self.read_timeout, message_mode, received)
        self._epoll.register(fd, _IN)
        if len(self._waiting) >= self.max_connections:
            self._close_gate(AT_CAP)  # reopened by _forget(): clients wait in the backlog

    def _socket_for(self, fd: int) -> sockets.socket:
        """A socket object for a waiting client's fd (no dup(): closing it closes the fd)."""
        kind = _SOCK_SEQPACKET if self._waiting.message_mode(fd) else _SOCK_STREAM
        return sockets.socket(_AF_UNIX, kind, 0, fd)

    def _read(self, fd: int) -> None:
        sock, received = self._socket_for(fd), self._waiting.received(fd)
        message_mode = sock.type != _SOCK_STREAM
        wanted = _MESSAGE_BYTES if message_mode else protocol.MAX_REQUEST_BYTES - len(received)
        try:
            data = sock.recv(wanted)
        except BlockingIOError:
            sock.detach()  # still waiting: the fd stays open
            return
        except OSError:
            self._forget(fd)
            self._lose(sock)
            return
        received += data
        if self._answer(sock, received, not data, message_mode):
            self._forget(fd)
        else:
            self._waiting.set_received(fd, received)
            sock.detach()

    def _answer(self, sock: sockets.socket, buffer: bytes, eof: bool, message_mode: bool) -> bool:
        """Greet or refuse, then close, if ``buffer`` holds a whole request; return whether
        it did. The one place a ProtocolError becomes an error line and a log line."""
        if not buffer:  # EOF (or an empty message) without a word: nobody to answer
            self._lose(sock)
            return True
        try:
            if message_mode:
                name = protocol.parse_message(buffer)
            else:
                line = protocol.find_request(buffer, eof)
                if line is None:
                    return False
                name = protocol.parse_name(line)
        except ProtocolError as error:
            self._refuse(sock, error.reason, buffer)
            return True
        if self._debug:
            self.log.debug(f"greeted {protocol.describe(name)} ({describe_peer(sock)})")
        self._send_and_close(sock, protocol.format_reply(name))
        self.tally.greeted += 1
        return True

    def _refuse(self, sock: sockets.socket, reason: str, received: bytes) -> None:
        peer = peer_credentials(sock)
        self._send_and_close(sock, protocol.format_error(reason))
        self.tally.refusal(peer, reason, received)

    def _send_and_close(self, sock: sockets.socket, reply: bytes) -> None:
        # A reply on a fresh socket always fits the send buffer, so this never blocks; a client
        # that already left (EPIPE, ECONNRESET) is only counted.
        try:
            sock.send(reply, _MSG_DONTWAIT)
        except OSError:
            self.tally.lost += 1
        sock.close()

    def _lose(self, sock: sockets.socket) -> None:
        self.tally.lost += 1
        if self._debug:
            self.log.debug(f"client left before sending a name ({describe_peer(sock)})")
        sock.close()

    def _forget(self, fd: int) -> None:
        """Stop waiting for a client that is answered or gone (closing its socket removes it
        from the epoll set)."""
        self._waiting.remove(fd)
        self._timers.activity(self.clock())
        if len(self._waiting) < self.max_connections:
            self._reopen_gate(AT_CAP)

    # -- Varlink connections (sessions.py): waited for like any client, between calls too ---

    def _in_session(self, fd: int) -> bool:
        return self._sessions is not None and fd in self._sessions

    def _open_session(self, fd: int) -> None:
        assert self._sessions is not None  # only Varlink listeners open sessions
        self._sessions.open(fd)
        self._park(sockets.socket(_AF_UNIX, _SOCK_STREAM, 0, fd), b"", False)

    def _converse(self, fd: int) -> None:
        """Answer what a Varlink client sent, then wait for its next call (until
        VARLINK_IDLE_TIMEOUT), or end the connection."""
        assert self._sessions is not None
        calls = self._sessions.converse(fd)
        if calls is None:
            self._end_session(fd)
        elif calls:
            # Only a whole call earns more time. Bytes that complete none keep the deadline
            # the connection had, so a client that sends a call a byte at a time is cut off
            # at it, as a line client is (bounded time per client).
            now = self.clock()
            self._waiting.renew(fd, now + self.varlink_idle_timeout, _VARLINK_IDLE_LANE)
            self._timers.activity(now)

    def _answer_what_arrived(self, fd: int, budget_end: int) -> None:
        """Read a Varlink connection, answering each call, until a read brings no whole call
        (nothing more was sent, or only part of one) or the stop's budget is spent: reads
        that find nothing cost nothing, so idle connections cannot use it up."""
        assert self._sessions is not None
        while self._sessions.bytes_read < budget_end:
            if not self._sessions.converse(fd):  # None (over) or 0 (nothing whole)
                return

    def _end_session(self, fd: int) -> None:
        assert self._sessions is not None
        self._forget(fd)
        self._sessions.close(fd)

    # -- datagrams (datagrams.py): no connection, so neither the cap nor a back-off stops them

    def _receive(self, fd: int) -> None:
        if self.stopping or self._datagrams is None:
            return
        if self._datagrams.receive(fd):
            self._timers.activity(self.clock())
