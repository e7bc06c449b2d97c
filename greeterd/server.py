"""The loop and the accept loop every listening socket shares: one thread, epoll, no asyncio.

Each kind of client has its module: lines.py answers line-protocol clients (stream,
seqpacket, and the one connection passed with Accept=yes, after which the loop returns) and
keeps every connection waited for (HeldClients), sessions.py Varlink connections and
datagrams.py datagrams (both imported only when such a socket is served). listeners.py keeps
the rest the loop listens on: listening sockets, the accept gate, accept()'s errors, the stop
signals' pipe. lifecycle.py says when timers fall due; tally.py's Duties do what falls due.
No asyncio: its import alone costs several interpreter start-ups, and start_unix_server()
would call listen() again on systemd's socket (docs/performance.md). One client's fault
becomes an error line, a log line and a close, never an exception out of the loop.
"""

from __future__ import annotations

import select
import time

from greeterd.activation import CONNECTION, VARLINK
from greeterd.lifecycle import Timers
from greeterd.lines import HeldClients, LineClients
from greeterd.listeners import Listeners
from greeterd.speedups import sockets
from greeterd.tally import Duties, Tally

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Sequence

    from greeterd.activation import Endpoint
    from greeterd.datagrams import Datagrams
    from greeterd.log import Log
    from greeterd.sessions import VarlinkSessions

#: Seconds a client has, from accept(), to send its whole name. A local client that has a name
#: sends it in microseconds; this only ends clients that hang (and bounds a drain on SIGTERM).
READ_TIMEOUT = 5.0

#: Connections waiting for their name at once. Past it greeterd stops accepting and new clients
#: wait in the kernel's listen backlog (the cap refuses no one; see MAX_CLIENTS_PER_UID).
#: Worst-case memory: MAX_CONNECTIONS x (MAX_REQUEST_BYTES + about 100 B of bookkeeping), 9 MiB.
MAX_CONNECTIONS = 8192

#: Clients of one user (uid) waited for at once: a quarter of MAX_CONNECTIONS, as sd-varlink
#: gives a uid 1024 of its 4096 connections. Past it that user's next client that would wait is
#: refused at once; lines.HeldClients says why, and whose clients are not counted.
MAX_CLIENTS_PER_UID = MAX_CONNECTIONS // 4

#: Connections accepted per wake-up, and clients cut off at their deadline per turn, before the
#: loop serves the others: bounds how long clients wait behind a flood of new clients, or behind
#: a wave of deadlines (thousands that connected together and sent nothing).
ACCEPT_BATCH = 256

#: Events taken from epoll per wake-up. Python's default (1023) builds a list of up to 1023
#: tuples each time thousands of idle clients hang up at once; smaller lists leave less memory
#: behind in the allocator's free lists once they are gone.
EVENTS_PER_POLL = 256

_AF_UNIX = sockets.AF_UNIX


class Server:
    """Greets clients on the given endpoints until told to stop, then drains.

    ``notify`` sends sd_notify(3) lines (a no-op outside systemd) and returns False for a line
    it dropped. ``exit_idle_time`` > 0 makes the server stop once nothing has happened for that
    long; only pass it when systemd can start greeterd again on the next connection.
    ``watchdog_interval`` is how often to send WATCHDOG=1.
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
        exempt_uids: Collection[int] = (),  # uids whose clients no share counts
        varlink_idle_timeout: float | None = None,  # None: sessions.VARLINK_IDLE_TIMEOUT
    ) -> None:
        self.log, self.notify, self.clock = log, notify, time.monotonic
        self.read_timeout, self.max_connections = read_timeout, max_connections
        self.tally = Tally(log, self.clock)
        self.stopping, self.epoll = False, select.epoll()
        self.timers = Timers(
            self.clock(), watchdog_interval=watchdog_interval, exit_idle_time=exit_idle_time
        )
        listeners = self.listeners = Listeners(endpoints, self.epoll, log, self.clock)
        self._listening, self._datagram_socks = listeners.accepting, listeners.datagram_socks
        self._gate = listeners.gate  # the accept loop reads it after every client
        self._handed_over = [e for e in endpoints if e.kind == CONNECTION]
        self.held = HeldClients(self, max_clients_per_uid, exempt_uids)
        self.waiting_clients = self.held.clients
        self._lines = LineClients(self)
        self._duties = Duties(self)
        self._sessions: VarlinkSessions | None = None
        if any(e.kind == VARLINK for e in endpoints):
            from greeterd.sessions import VarlinkSessions  # noqa: PLC0415 (imports json)

            self._sessions = VarlinkSessions(self, varlink_idle_timeout)
        self._datagrams: Datagrams | None = None
        if self._datagram_socks:
            from greeterd.datagrams import Datagrams  # noqa: PLC0415 (only with datagrams)

            self._datagrams = Datagrams(self)
        # Accept=yes: nothing to accept, so the work is done when the one client is.
        self._one_shot = not (self._listening or self._datagram_socks)

    # What the server has done, for tests and benchmarks.
    greeted = property(lambda self: self.tally.greeted)
    refused = property(lambda self: self.tally.refused)
    lost = property(lambda self: self.tally.lost, doc="Clients that left before an answer.")
    waiting = property(lambda self: len(self.waiting_clients), doc="Clients waited for.")

    # -- the loop ---------------------------------------------------------------------------

    def run(self, then: Callable[[], object] | None = None) -> None:
        """Serve until SIGTERM (the wakeup fd, listeners.py) or exit-on-idle, then drain and return.

        ``then`` is start-up work the clients already queued need not wait for: it runs once
        they are served, before the loop waits for more."""
        for endpoint in self._handed_over:
            self._lines.serve(endpoint.sock, endpoint.message_mode)
        self.wake_up_every_endpoint()  # whoever woke systemd up is queued: serve them first
        if then is not None:
            then()
        listeners, sessions, datagrams = self.listeners, self._sessions, self._datagrams
        while True:
            now = self.clock()
            self._housekeeping(now)
            if (self.stopping or self._one_shot) and not self.waiting_clients:
                break
            for fd, _ in self.epoll.poll(self._poll_timeout(now), EVENTS_PER_POLL):
                if fd in self._listening:
                    self.accept_batch(fd)
                elif fd in self.waiting_clients:
                    if sessions is not None and fd in sessions:
                        sessions.converse(fd)
                    else:
                        self._lines.read(fd)
                elif datagrams is not None and fd in self._datagram_socks:
                    datagrams.receive(fd)
                elif fd == listeners.wakeup_fd and (why := listeners.stop_signal()):
                    self.stop(why)
        self.tally.flush()
        self.epoll.close()

    def wake_up_every_endpoint(self) -> None:
        """Serve whoever is queued on any endpoint now, without waiting for epoll."""
        for fd in self._listening:
            self.accept_batch(fd)
        if self._datagrams is not None:
            for fd in self._datagram_socks:
                self._datagrams.receive(fd)

    def stop(self, why: str) -> None:
        """Stop accepting and finish the connections in flight; queued clients are left in the
        listen backlog for the next instance, which systemd starts on demand."""
        if self.stopping:
            return
        self.stopping = True
        self.listeners.stop()
        if self._sessions is not None:
            self._sessions.stop()  # answers the calls already sent, then ends each connection
        status = self.tally.status(self.waiting)
        self.notify(f"STOPPING=1\nSTATUS=Stopping ({why}); {status}")
        self.log.info(f"stopping ({why}): {status}")

    def _poll_timeout(self, now: float) -> float:
        due = (self.waiting_clients.next_deadline(), self._duties.next_due(), self._gate.resume_at)
        wake = [when for when in due if when is not None]
        return max(0.0, min(wake) - now) if wake else -1.0

    def _housekeeping(self, now: float) -> None:
        for _ in range(ACCEPT_BATCH):  # the rest of a wave next turn, after a poll that won't wait
            if (fd := self.waiting_clients.first_expired(now)) is None:
                break
            if self._sessions is not None and fd in self._sessions:
                self._sessions.end(fd)  # idle between calls: nothing owed, nothing to refuse
            else:
                self._lines.time_out(fd)
        self.listeners.back_off_over(now)
        self._duties.run(now)

    # -- accepting: every listening socket, whatever its clients speak -----------------------

    def accept_batch(self, fd: int) -> None:
        """Accept and serve up to ACCEPT_BATCH clients: the hot path, kept flat on purpose."""
        listeners, gate = self.listeners, self._gate
        if not gate.open:
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
                if listeners.accept_failed(error, self.waiting):
                    continue  # the client had gone: take the next
                break
            if gate.failures:
                listeners.accepting_again()
            if sessions is not None:
                sessions.open(client)
            else:
                serve(sockets.socket(_AF_UNIX, kind, 0, client), message_mode)
            if not gate.open:  # HeldClients.hold() reached max_connections
                break
        self.timers.activity(self.clock())
