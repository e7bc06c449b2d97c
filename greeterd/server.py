"""The loop and the accept loop every listening socket shares: one thread, epoll, no asyncio.

Each kind of client has its module: lines.py answers line-protocol clients (stream,
seqpacket, and the one connection passed with Accept=yes, after which the loop returns),
sessions.py Varlink connections and datagrams.py datagrams (both imported only when such a
socket is served). lifecycle.py says when timers fall due and whether to accept; waiting.py
keeps the clients still sending. No asyncio: its import alone costs several interpreter
start-ups, and start_unix_server() would call listen() again on systemd's socket
(docs/performance.md). One client's fault becomes an error line, a log line and a close,
never an exception out of the loop.
"""

from __future__ import annotations

import errno
import select
import time

from greeterd.activation import CONNECTION, DATAGRAM, LISTENER, VARLINK
from greeterd.lifecycle import (
    ACCEPT_BACKOFF,
    AT_CAP,
    OUT_OF_RESOURCES,
    STOPPING,
    AcceptGate,
    Timers,
)
from greeterd.lines import LineClients, peer_credentials
from greeterd.speedups import accepter, sockets, syscalls
from greeterd.tally import Tally
from greeterd.waiting import UserShares, WaitingClients

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence
    from typing import Any

    from greeterd.activation import Endpoint
    from greeterd.datagrams import Datagrams
    from greeterd.lines import Peer
    from greeterd.log import Log
    from greeterd.sessions import VarlinkSessions

#: Seconds a client has, from accept(), to send its whole name. A local client that has a name
#: sends it in microseconds; this only ends clients that hang (and bounds a drain on SIGTERM).
READ_TIMEOUT = 5.0

#: Connections waiting for their name at once. Past it greeterd stops accepting and new clients
#: wait in the kernel's listen backlog (never refused). Worst-case memory is about
#: MAX_CONNECTIONS x (MAX_REQUEST_BYTES + about 100 B of bookkeeping), about 9 MiB.
MAX_CONNECTIONS = 8192

#: Clients of one user (uid) greeterd waits for at once: a quarter of MAX_CONNECTIONS, as
#: sd-varlink gives a uid VARLINK_DEFAULT_CONNECTIONS_PER_UID_MAX (1024) of its
#: VARLINK_DEFAULT_CONNECTIONS_MAX (4096). Past it, that user's next client that would wait is
#: refused at once (protocol.TOO_MANY_WAITING) instead of taking a place, so one user cannot
#: fill the cap and keep every other user's clients in the backlog. Only clients that wait are
#: counted: one whose name came with it is answered at once, whoever sent it. The daemon
#: exempts root and its own uid (daemon.py, and docs/security.md says why).
MAX_CLIENTS_PER_UID = MAX_CONNECTIONS // 4

#: Fds greeterd holds besides its clients' (listeners, epoll, the wake-up pipe, the journal,
#: a module being imported) and a margin: what fit_to_open_files() keeps out of the places.
SPARE_FDS = 32

#: Connections accepted per wake-up before the loop serves the others: bounds how long clients
#: that are mid-request wait behind a flood of new ones.
ACCEPT_BATCH = 256

#: Events taken from epoll per wake-up. Python's default (1023) builds a list of up to 1023
#: tuples each time thousands of idle clients hang up at once; smaller lists leave less memory
#: behind in the allocator's free lists once they are gone.
EVENTS_PER_POLL = 256

# The client gave up between the kernel queueing it and accept(): nothing to serve.
_CLIENT_GONE = frozenset({errno.ECONNABORTED, errno.EPROTO})
_AF_UNIX = sockets.AF_UNIX
_IN = select.EPOLLIN
# One deadline lane per timeout length (waiting.py says why): READ_TIMEOUT for every client's
# first request, and the one deadline renewed, Varlink's between calls.
_READ_LANE, _RENEWED_LANE = 0, 1


class Server:
    """Greets clients on the given endpoints until told to stop, then drains.

    ``notify`` sends sd_notify(3) lines (a no-op outside systemd) and returns False for a line
    it dropped. ``exit_idle_time`` > 0 makes
    the server stop once nothing has happened for that long; only pass it when systemd can
    start greeterd again on the next connection. ``watchdog_interval`` is how often to send
    WATCHDOG=1. ``max_clients_per_uid`` is each user's share of ``max_connections``; the
    clients of ``exempt_uids`` are not counted.
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
        max_clients_per_uid: int = MAX_CLIENTS_PER_UID,
        exempt_uids: Collection[int] = (),
        varlink_idle_timeout: float | None = None,  # None: sessions.VARLINK_IDLE_TIMEOUT
    ) -> None:
        self.log, self.notify, self.clock = log, notify, time.monotonic
        self.read_timeout, self.max_connections = read_timeout, max_connections
        self.tally = Tally(log, self.clock)
        self.waiting_clients = WaitingClients(lanes=2)
        self.shares = UserShares(max_clients_per_uid, exempt_uids)
        self.stopping = False
        self._epoll = select.epoll()
        self._gate = AcceptGate()  # for connections: a datagram needs no fd
        self._wakeup_fd, self._signal_names = -1, dict[int, str]()
        self._timers = Timers(
            self.clock(), watchdog_interval=watchdog_interval, exit_idle_time=exit_idle_time
        )
        # (accept call, type of the sockets it accepts, whether they speak Varlink) by fd
        self._listening = {
            e.sock.fileno(): (accepter(e.sock), e.sock.type, e.kind == VARLINK)
            for e in endpoints
            if e.kind in (LISTENER, VARLINK)
        }
        self._handed_over = [e for e in endpoints if e.kind == CONNECTION]
        self._lines = LineClients(self)
        self._sessions: VarlinkSessions | None = None
        if any(e.kind == VARLINK for e in endpoints):
            from greeterd.sessions import VarlinkSessions  # noqa: PLC0415 (imports json)

            self._sessions = VarlinkSessions(self, varlink_idle_timeout)
        self._datagram_socks = {e.sock.fileno(): e.sock for e in endpoints if e.kind == DATAGRAM}
        self._datagrams: Datagrams | None = None
        if self._datagram_socks:
            from greeterd.datagrams import Datagrams  # noqa: PLC0415 (only with datagrams)

            self._datagrams = Datagrams(self._datagram_socks, self.tally, log)
        # Accept=yes: nothing to accept, so the work is done when the one client is.
        self._one_shot = not (self._listening or self._datagram_socks)
        self._watch(self._listening, True)
        self._watch(self._datagram_socks, True)

    def fit_to_open_files(self, limit: int) -> None:
        """Hold each user's share to a quarter of the clients greeterd can really hold: with
        ``limit`` open files (RLIMIT_NOFILE; a container may cap it at 1024), accept() fails
        with EMFILE long before max_connections, and a share above the fds would let one user
        take them all."""
        places = min(self.max_connections, max(limit - SPARE_FDS, 4))
        ratio = self.shares.share / self.max_connections
        self.shares.share = min(self.shares.share, max(1, int(places * ratio)))

    # What the server has done, for tests and benchmarks.
    greeted = property(lambda self: self.tally.greeted)
    refused = property(lambda self: self.tally.refused)
    lost = property(lambda self: self.tally.lost, doc="Clients that left before an answer.")
    waiting = property(lambda self: len(self.waiting_clients), doc="Clients waited for.")

    # -- the loop ---------------------------------------------------------------------------

    def run(self, then: Callable[[], object] | None = None) -> None:
        """Serve until SIGTERM (via watch_wakeup_fd) or exit-on-idle, then drain and return.

        ``then`` is start-up work the clients already queued need not wait for: it runs once
        they are served, before the loop waits for more."""
        for endpoint in self._handed_over:
            self._lines.serve(endpoint.sock, endpoint.message_mode)
        self._wake_up_every_endpoint()  # whoever woke systemd up is queued: serve them first
        if then is not None:
            then()
        sessions = self._sessions
        while True:
            now = self.clock()
            self._housekeeping(now)
            if (self.stopping or self._one_shot) and not self.waiting_clients:
                break
            for fd, _ in self._epoll.poll(self._poll_timeout(now), EVENTS_PER_POLL):
                if fd in self._listening:
                    self.accept_batch(fd)
                elif fd in self.waiting_clients:
                    if sessions is not None and fd in sessions:
                        sessions.converse(fd)
                    else:
                        self._lines.read(fd)
                elif fd in self._datagram_socks:
                    self._receive(fd)
                elif fd == self._wakeup_fd:
                    self._on_wakeup()
        self.tally.flush()
        self._epoll.close()

    def _wake_up_every_endpoint(self) -> None:
        for fd in self._listening:
            self.accept_batch(fd)
        for fd in self._datagram_socks:
            self._receive(fd)

    def watch_wakeup_fd(self, fd: int, signal_names: dict[int, str]) -> None:
        """Stop (drain and return) when ``fd`` becomes readable: signal.set_wakeup_fd's pipe.
        The stop is logged with the signal's name in ``signal_names``."""
        self._wakeup_fd, self._signal_names = fd, signal_names
        self._epoll.register(fd, _IN)

    def stop(self, why: str) -> None:
        """Stop accepting and finish the connections in flight; queued clients are left in the
        listen backlog for the next instance, which systemd starts on demand."""
        if self.stopping:
            return
        self.stopping = True
        self._close_gate(STOPPING)
        self._watch(self._datagram_socks, False)
        if self._sessions is not None:
            self._sessions.stop()  # answers the calls already sent, then ends each connection
        status = self.tally.status(self.waiting)
        self.notify(f"STOPPING=1\nSTATUS=Stopping ({why}); {status}")
        self.log.info(f"stopping ({why}): {status}")

    def _on_wakeup(self) -> None:
        received = syscalls.read(self._wakeup_fd, 64)
        if received:
            number = received[-1]
            self.stop(self._signal_names.get(number, f"signal {number}"))

    def _poll_timeout(self, now: float) -> float:
        due = (
            self.waiting_clients.next_deadline(),
            self._timers.next_due(self.tally.news, self._idle()),
            self._gate.resume_at,
            self.tally.next_due,
        )
        wake = [when for when in due if when is not None]
        return max(0.0, min(wake) - now) if wake else -1.0

    def _idle(self) -> bool:
        """Nothing in flight: an idle exit would strand no one."""
        return not self.stopping and not self.waiting_clients

    def _housekeeping(self, now: float) -> None:
        sessions = self._sessions
        while (fd := self.waiting_clients.first_expired(now)) is not None:
            if sessions is not None and fd in sessions:
                sessions.end(fd)  # idle between calls: nothing owed, nothing to refuse
            else:
                self._lines.time_out(fd)
        if self._gate.back_off_over(now):
            self._watch(self._listening, True)
        if self._timers.watchdog_due(now):
            # notify() returns False for a message it dropped (PID 1's queue was full).
            self._timers.watchdog_sent(self.notify("WATCHDOG=1") is not False, now)
        if self._timers.status_due(now, self.tally.news):
            self.notify(f"STATUS={self.tally.report(self.waiting)}")
        if self._timers.idle_due(now, self._idle()):
            self._exit_if_idle()
        due = self.tally.next_due
        if due is not None and now >= due:
            self.tally.summarise(now)

    def _exit_if_idle(self) -> None:
        # Re-check: a client that connected since the last wake-up is served, not stranded.
        # One that connects after this stays queued, and systemd starts the next instance.
        before = self._timers.last_activity
        self._wake_up_every_endpoint()
        if self.waiting_clients or self._timers.last_activity != before:
            return
        self.stop(f"idle for {self._timers.exit_idle_time:g}s")

    def _receive(self, fd: int) -> None:
        """Datagrams (datagrams.py): no connection, so neither the cap nor a back-off stops
        them; only stopping does."""
        if not self.stopping and self._datagrams is not None and self._datagrams.receive(fd):
            self._timers.activity(self.clock())

    # -- accepting: every listening socket, whatever its clients speak -----------------------

    def accept_batch(self, fd: int) -> None:
        """Accept and serve up to ACCEPT_BATCH clients: the hot path, kept flat on purpose."""
        if not self._gate.open:
            return
        # A call that returns the bare fd; the client's socket object is made here from the
        # known family and type (speedups.py says why).
        accept, kind, varlink = self._listening[fd]
        serve, message_mode = self._lines.serve, kind != sockets.SOCK_STREAM
        sessions = self._sessions if varlink else None
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
            if self._gate.failures:
                self.log.notice(f"accepting again after {self._gate.accepted()} failed accept()s")
            if sessions is not None:
                sessions.open(client)
            else:
                serve(sockets.socket(_AF_UNIX, kind, 0, client), message_mode)
            if not self._gate.open:  # hold() reached max_connections
                break
        self._timers.activity(self.clock())

    def _accept_failed(self, error: OSError) -> None:
        """Out of fds or memory: log once per burst and pause; anything else is a real fault."""
        if error.errno not in OUT_OF_RESOURCES:
            raise error
        if not self._gate.failures:
            self.log.warning(
                f"accept() failed: {error.strerror}; pausing {ACCEPT_BACKOFF:g}s at a time "
                f"until it works again ({self.waiting} clients waiting)",
                errno=errno.errorcode.get(error.errno or 0, error.errno),
            )
        if self._gate.back_off(self.clock() + ACCEPT_BACKOFF):
            self._watch(self._listening, False)

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

    # -- the clients waited for, whatever they speak (lines.py, sessions.py) -----------------

    def hold(self, sock: sockets.socket, received: bytes, message_mode: bool) -> Peer | None:
        """Wait in epoll for the rest of a client's request, until READ_TIMEOUT from now, and
        return None. Only the fd is kept (waiting.py says why); at max_connections the accept
        gate closes. A client whose user already has max_clients_per_uid waiting is not held:
        its credentials are returned, for the caller to refuse it (TOO_MANY_WAITING) and close.
        The credentials are asked here, once per client that waits, never on the fast path."""
        peer = peer_credentials(sock)
        uid = peer[1]
        if not self.shares.take(uid):
            return peer
        sock.setblocking(False)
        fd = sock.detach()
        deadline = self.clock() + self.read_timeout
        self.waiting_clients.add(fd, deadline, message_mode, received, _READ_LANE, uid=uid)
        self._epoll.register(fd, _IN)
        if len(self.waiting_clients) >= self.max_connections:
            self._close_gate(AT_CAP)  # reopened by release(): clients wait in the backlog
        return None

    def renew(self, fd: int, seconds: float) -> None:
        """Wait ``seconds`` more for a client held, from now (Varlink's next call)."""
        now = self.clock()
        self.waiting_clients.renew(fd, now + seconds, _RENEWED_LANE)
        self._timers.activity(now)

    def release(self, fd: int) -> None:
        """Stop waiting for a client that is answered or gone (closing its socket removes it
        from the epoll set)."""
        self.shares.give_back(self.waiting_clients.remove(fd))
        self._timers.activity(self.clock())
        if len(self.waiting_clients) < self.max_connections and self._gate.reopen(AT_CAP):
            self._watch(self._listening, True)
