"""The accept-and-answer loop: one thread, epoll, and a fast path for clients that are ready.

It serves every kind of endpoint activation.py adopts: listening stream and seqpacket sockets
(Accept=no), datagram sockets, and a single connection passed with Accept=yes (then it
returns once that client is served).

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
import os
import select
import sys
import time

from greeterd import protocol
from greeterd.activation import CONNECTION, DATAGRAM, LISTENER, VARLINK
from greeterd.folding import OTHERS, RefusalFolder
from greeterd.lifecycle import AT_CAP, STOPPING, AcceptGate, Timers
from greeterd.log import DEBUG
from greeterd.protocol import ProtocolError
from greeterd.speedups import accepter, signals, sockets
from greeterd.waiting import WaitingClients

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from greeterd import varlink
    from greeterd.activation import Endpoint
    from greeterd.log import Log

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

#: Seconds a Varlink connection may stay silent between calls before greeterd closes it. It
#: holds one of the MAX_CONNECTIONS places meanwhile; a client that calls again within it
#: keeps its connection (varlinkctl makes its calls at once, then leaves).
VARLINK_IDLE_TIMEOUT = 10.0

#: Bytes read from a Varlink connection at a time: a few calls, or most of the largest one.
VARLINK_READ_BYTES = 16384

_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# The client gave up between the kernel queueing it and accept(): nothing to serve.
_CLIENT_GONE = frozenset({errno.ECONNABORTED, errno.EPROTO})

_MSG_DONTWAIT = sockets.MSG_DONTWAIT
_AF_UNIX = sockets.AF_UNIX
_SOCK_STREAM = sockets.SOCK_STREAM
_SOCK_SEQPACKET = sockets.SOCK_SEQPACKET
_IN = select.EPOLLIN
# A message is read with one byte to spare, so one that is too long shows as too long.
_MESSAGE_BYTES = protocol.MAX_REQUEST_BYTES + 1
# A datagram's ancillary data: the sender's credentials (struct ucred: pid, uid, gid), and
# room for the most fds a client can pass with it (SCM_MAX_FD, 253), each closed at once by
# _sender_credentials(). The kernel installs in greeterd every passed fd that fits in this
# buffer, and one left open would stay until greeterd ran out of fds; a buffer with no room
# for them drops them only by accident of its size, of SO_PASSCRED, and of the order the kernel
# writes credentials and fds in.
_ANCILLARY_SPACE = sockets.CMSG_SPACE(12) + sockets.CMSG_SPACE(253 * 4)
_UNKNOWN_PEER = (-1, -1, -1)
#: The signals that make greeterd drain and exit (daemon.py routes them to the wakeup fd), with
#: the names the stop is logged with; the signal module's enum would cost start-up time.
STOP_SIGNALS: dict[int, str] = {signals.SIGTERM: "SIGTERM", signals.SIGINT: "SIGINT"}


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
        self.greeted = 0
        self.refused = 0
        self.lost = 0  # clients that left before an answer could reach them
        self._reported = (0, 0)  # (greeted, refused) in the last STATUS=
        self.stopping = False
        self._listeners = {e.sock.fileno(): e.sock for e in endpoints if e.kind == LISTENER}
        self._accepters = {fd: accepter(sock) for fd, sock in self._listeners.items()}
        self._datagrams = {e.sock.fileno(): e.sock for e in endpoints if e.kind == DATAGRAM}
        self._handed_over = [e for e in endpoints if e.kind == CONNECTION]
        self._varlink_listeners = {e.sock.fileno(): e.sock for e in endpoints if e.kind == VARLINK}
        # Varlink connections by fd; their deadlines and their place under the cap are kept in
        # self._waiting like any client's. json is imported only when a Varlink socket is served.
        self._sessions: dict[int, varlink.Connection] = {}
        if self._varlink_listeners:
            from greeterd import varlink  # noqa: PLC0415 (only with a Varlink socket)

            self._varlink = varlink
            self._accepters.update((fd, accepter(s)) for fd, s in self._varlink_listeners.items())
        # Accept=yes: nothing to accept, so the work is done when the one client is.
        self._one_shot = not (self._listeners or self._datagrams or self._varlink_listeners)
        self._waiting = WaitingClients()
        self._epoll = select.epoll()
        self._timers = Timers(
            self.clock(),
            watchdog_interval=watchdog_interval,
            status_interval=STATUS_INTERVAL,
            exit_idle_time=exit_idle_time,
        )
        self._gate = AcceptGate()  # for stream and seqpacket clients: a datagram needs no fd
        self._refusals = RefusalFolder()
        self._accept_failures = 0
        self._wakeup_fd = -1
        self._debug = log.enabled(DEBUG)
        self._watch(self._listeners, True)
        self._watch(self._datagrams, True)
        self._watch(self._varlink_listeners, True)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGTERM (via watch_wakeup_fd) or exit-on-idle, then drain and return."""
        for endpoint in self._handed_over:
            self._serve_new(endpoint.sock, endpoint.message_mode)
        self._wake_up_every_endpoint()  # whoever woke systemd up is queued: serve them first
        while True:
            now = self.clock()
            self._housekeeping(now)
            if (self.stopping or self._one_shot) and not self._waiting:
                break
            for fd, _ in self._epoll.poll(self._poll_timeout(now), EVENTS_PER_POLL):
                if fd in self._listeners:
                    self._accept(fd)
                elif fd in self._sessions:
                    self._converse(fd)
                elif fd in self._waiting:
                    self._read(fd)
                elif fd in self._datagrams:
                    self._receive(self._datagrams[fd])
                elif fd in self._varlink_listeners:
                    self._accept_varlink(fd)
                elif fd == self._wakeup_fd:
                    self._on_wakeup()
        self._log_summaries(self._refusals.flush())
        self._epoll.close()

    def _wake_up_every_endpoint(self) -> None:
        for fd in self._listeners:
            self._accept(fd)
        for fd in self._varlink_listeners:
            self._accept_varlink(fd)
        for sock in self._datagrams.values():
            self._receive(sock)

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
        self._watch(self._datagrams, False)
        # Every call that arrived whole is answered already; an idle Varlink connection would
        # hold the drain for up to VARLINK_IDLE_TIMEOUT, so they end now (clients reconnect,
        # and systemd starts the next instance).
        for fd in list(self._sessions):
            self._end_session(fd)
        self.notify(f"STOPPING=1\nSTATUS=Stopping ({why}); {self.status()}")
        self.log.info(f"stopping ({why}): {self.status()}")

    def _on_wakeup(self) -> None:
        received = os.read(self._wakeup_fd, 64)
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
                self._refusals.next_due,
            )
            if due is not None
        ]
        return max(0.0, min(wake) - now) if wake else -1.0

    def _housekeeping(self, now: float) -> None:
        while (fd := self._waiting.first_expired(now)) is not None:
            if fd in self._sessions:
                self._end_session(fd)  # idle between calls: nothing owed, nothing to refuse
                continue
            sock, received = self._socket_for(fd), self._waiting.received(fd)
            self._forget(fd)
            self._refuse(sock, protocol.TIMED_OUT, received)
        if self._gate.back_off_over(now):
            self._watch(self._listeners, True)
            self._watch(self._varlink_listeners, True)
        if self._timers.watchdog_due(now):
            self.notify("WATCHDOG=1")
        if self._timers.status_due(now, self._status_changed()):
            self.notify(f"STATUS={self.status()}")
            self._reported = (self.greeted, self.refused)
        if self._timers.idle_due(now, self._idle()):
            self._exit_if_idle()
        if self._refusals.next_due is not None and now >= self._refusals.next_due:
            self._log_summaries(self._refusals.due(now))

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
        """Clients connected and waited for: their request has not arrived in full yet."""
        return len(self._waiting)

    # -- accepting --------------------------------------------------------------------------

    def _watch(self, endpoints: dict[int, sockets.socket], watching: bool) -> None:
        """Watch these sockets in epoll, or stop: new clients then wait in the kernel (the
        listen backlog, the socket's receive queue)."""
        for fd in endpoints:
            if watching:
                self._epoll.register(fd, _IN)
            else:
                self._epoll.unregister(fd)

    def _close_gate(self, reason: str) -> None:
        if self._gate.close(reason):
            self._watch(self._listeners, False)
            self._watch(self._varlink_listeners, False)

    def _reopen_gate(self, reason: str) -> None:
        if self._gate.reopen(reason):
            self._watch(self._listeners, True)
            self._watch(self._varlink_listeners, True)

    def _accept(self, fd: int) -> None:
        """Accept and serve up to ACCEPT_BATCH clients: the hot path, kept flat on purpose."""
        if not self._gate.open:
            return
        # A call that returns the bare fd; the client's socket object is made here from the
        # known family and type (speedups.py says why).
        accept = self._accepters[fd]
        kind = self._listeners[fd].type
        message_mode = kind != _SOCK_STREAM
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
                self.log.notice(f"accepting again after {self._accept_failures} failed accept()s")
                self._accept_failures = 0
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
            self._watch(self._listeners, False)
            self._watch(self._varlink_listeners, False)

    # -- serving ----------------------------------------------------------------------------

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
        try:
            if message_mode:
                if not buffer:
                    self._lose(sock)  # EOF (or an empty message): nobody to answer
                    return True
                name = protocol.parse_message(buffer)
            else:
                line = protocol.find_request(buffer, eof)
                if line is None:
                    return False
                if not buffer:
                    self._lose(sock)  # connected and left without a word: nobody to answer
                    return True
                name = protocol.parse_name(line)
        except ProtocolError as error:
            self._refuse(sock, error.reason, buffer)
            return True
        if self._debug:
            self.log.debug(f"greeted {protocol.describe(name)} ({_peer(sock)})")
        self._send_and_close(sock, protocol.format_reply(name))
        self.greeted += 1
        return True

    def _refuse(self, sock: sockets.socket, reason: str, received: bytes) -> None:
        peer = _peer_credentials(sock)
        self._send_and_close(sock, protocol.format_error(reason))
        self._log_refusal(peer, reason, received)

    def _log_refusal(self, peer: tuple[int, int, int], reason: str, received: bytes | str) -> None:
        """Count a refusal and log it, or fold it into its uid's summary (folding.py)."""
        pid, uid, gid = peer
        self.refused += 1
        if not self._refusals.refused(self.clock(), uid, reason):
            return
        self.log.notice(
            f"refused request from pid {pid} uid {uid}: {reason}: {protocol.describe(received)}",
            reason=reason,
            peer_pid=pid,
            peer_uid=uid,
            peer_gid=gid,
            received=protocol.describe(received),
        )

    def _log_summaries(self, summaries: list[tuple[int | None, str, int]]) -> None:
        for uid, reason, repeats in summaries:
            who = "other peers" if uid is OTHERS else f"uid {uid}"
            self.log.notice(
                f"refused {repeats} more requests from {who} within "
                f"{self._refusals.window:g}s: {reason} (GREETER_REPEATS={repeats})",
                reason=reason,
                peer_uid="other" if uid is OTHERS else uid,
                repeats=repeats,
            )

    def _send_and_close(self, sock: sockets.socket, reply: bytes) -> None:
        # A reply on a fresh socket always fits the send buffer, so this never blocks; a client
        # that already left (EPIPE, ECONNRESET) is only counted.
        try:
            sock.send(reply, _MSG_DONTWAIT)
        except OSError:
            self.lost += 1
        sock.close()

    def _lose(self, sock: sockets.socket) -> None:
        self.lost += 1
        if self._debug:
            self.log.debug(f"client left before sending a name ({_peer(sock)})")
        sock.close()

    def _forget(self, fd: int) -> None:
        """Stop waiting for a client that is answered or gone (closing its socket removes it
        from the epoll set)."""
        self._waiting.remove(fd)
        self._timers.activity(self.clock())
        if len(self._waiting) < self.max_connections:
            self._reopen_gate(AT_CAP)

    # -- Varlink: many calls per connection, replies as the calls arrive -------------------

    def _accept_varlink(self, fd: int) -> None:
        """Accept up to ACCEPT_BATCH Varlink clients; each waits in epoll for its calls."""
        accept = self._accepters[fd]
        for _ in range(ACCEPT_BATCH):
            if not self._gate.open:
                return
            try:
                client, _ = accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in _CLIENT_GONE:
                    continue
                self._accept_failed(error)
                return
            self._sessions[client] = self._varlink.Connection()
            self._park(sockets.socket(_AF_UNIX, _SOCK_STREAM, 0, client), b"", False)
            self._timers.activity(self.clock())

    def _converse(self, fd: int) -> None:
        """Read what a Varlink client sent, answer every call that is whole, and wait for more
        (until VARLINK_IDLE_TIMEOUT), or end the connection."""
        sock = sockets.socket(_AF_UNIX, _SOCK_STREAM, 0, fd)
        try:
            data = sock.recv(VARLINK_READ_BYTES)
        except BlockingIOError:
            sock.detach()
            return
        except OSError:
            data = b""
        if not data:  # the client left (or reset): nothing owed
            sock.detach()
            self._end_session(fd)
            return
        session = self._sessions[fd]
        received = session.receive(data)
        self.greeted += received.greeted
        if received.refused:
            peer = _peer_credentials(sock)
            for reason, name in received.refused:
                self._log_refusal(peer, reason, name)
        sock.detach()
        if not self._reply(fd, received.replies) or session.closing:
            self._end_session(fd)
            return
        self._waiting.remove(fd)  # a new deadline from now
        self._waiting.add(fd, self.clock() + self.varlink_idle_timeout, False, b"")
        self._timers.activity(self.clock())

    def _reply(self, fd: int, replies: bytes) -> bool:
        """Send the replies whole without waiting; False when the client cannot take them (it
        does not read, or left): greeterd never queues replies, so memory stays bounded."""
        if not replies:
            return True
        try:
            return os.write(fd, replies) == len(replies)
        except OSError:
            return False

    def _end_session(self, fd: int) -> None:
        del self._sessions[fd]
        self._forget(fd)
        os.close(fd)

    # -- datagrams: no connection, so neither the client cap nor a back-off stops them ------

    def _receive(self, sock: sockets.socket) -> None:
        """Answer up to ACCEPT_BATCH datagrams, each with one datagram to its sender."""
        if self.stopping:
            return
        for _ in range(ACCEPT_BATCH):
            try:
                message, ancillary, _, sender = sock.recvmsg(
                    _MESSAGE_BYTES, _ANCILLARY_SPACE, _MSG_DONTWAIT
                )
            except BlockingIOError:
                break
            except OSError as error:
                self.log.warning(f"receiving a datagram failed: {error.strerror}")
                break
            self._timers.activity(self.clock())
            peer = _sender_credentials(ancillary)
            if not sender:
                # An unbound client has no address to reply to: say so in the log only.
                self._log_refusal(
                    peer, "datagram from an unbound socket: no reply possible", message
                )
                continue
            try:
                reply = protocol.format_reply(protocol.parse_message(message))
                self.greeted += 1
            except ProtocolError as error:
                reply = protocol.format_error(error.reason)
                self._log_refusal(peer, error.reason, message)
            try:
                sock.sendto(reply, _MSG_DONTWAIT, sender)
            except OSError:
                self.lost += 1  # gone, or its receive queue is full


def _peer_credentials(sock: sockets.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the client, from SO_PEERCRED; (-1, -1, -1) if the kernel has none."""
    try:
        return _ucred(sock.getsockopt(sockets.SOL_SOCKET, sockets.SO_PEERCRED, 12))
    except OSError:
        return _UNKNOWN_PEER


def _sender_credentials(ancillary: list[tuple[int, int, bytes]]) -> tuple[int, int, int]:
    """(pid, uid, gid) from a datagram's SCM_CREDENTIALS, or unknown ones; closes every fd
    the sender passed (SCM_RIGHTS): greeterd has no use for them (see _ANCILLARY_SPACE)."""
    peer = _UNKNOWN_PEER
    for level, kind, data in ancillary:
        if level != sockets.SOL_SOCKET:
            continue
        if kind == sockets.SCM_RIGHTS:
            for start in range(0, len(data) - len(data) % 4, 4):
                os.close(int.from_bytes(data[start : start + 4], sys.byteorder, signed=True))
        elif kind == sockets.SCM_CREDENTIALS and len(data) >= 12:
            peer = _ucred(data)
    return peer


def _ucred(raw: bytes) -> tuple[int, int, int]:
    pid, uid, gid = (int.from_bytes(raw[i : i + 4], sys.byteorder, signed=True) for i in (0, 4, 8))
    return pid, uid, gid


def _peer(sock: sockets.socket) -> str:
    pid, uid, _ = _peer_credentials(sock)
    return f"pid {pid} uid {uid}"
