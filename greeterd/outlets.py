"""The ways out of greeterd besides its clients: journal entries, lines on standard error and
sd_notify(3) messages, each written without ever making the loop wait.

A daemon whose log can stall it is only as available as its log: a journald that is stopped,
overloaded or waiting on a slow disk stops reading its socket, and once the socket's queue is
full a blocking ``sendmsg()`` (systemd-python's ``journal.send`` and ``notify`` both make one)
holds every client until the watchdog kills the process. So every write here is tried once,
with MSG_DONTWAIT or on a non-blocking file, and returns False when it cannot go now: the
caller counts it and moves on (log.py reports the count), never retrying in a loop.
"""

from __future__ import annotations

import errno
import select
import stat

from greeterd.speedups import blocking_notify, sockets, syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

#: Where journald reads native-protocol entries (systemd's "Native Journal Protocol").
JOURNAL_SOCKET = "/run/systemd/journal/socket"

#: Seconds READY=1 and STOPPING=1 may wait for room on NOTIFY_SOCKET. systemd acts on these
#: (a lost READY=1 fails the start after TimeoutStartSec=), and they are sent once per run,
#: outside the loop; WATCHDOG=1 and STATUS= come again and never wait.
NOTIFY_WAIT = 1.0

#: The most a line on standard error takes: a pipe takes a write of up to PIPE_BUF bytes
#: whole or not at all, so a line is never torn, even when others write to the same pipe.
MAX_LINE_BYTES = select.PIPE_BUF

_DONTWAIT = sockets.MSG_DONTWAIT | sockets.MSG_NOSIGNAL
_TRUNCATED = "…\n".encode()


class DatagramOutlet:
    """Datagrams to an AF_UNIX datagram socket that systemd reads (the journal's,
    NOTIFY_SOCKET). ``address`` is a path, or an abstract name written with a leading '@'.

    The socket is connected, so that poll() tells when the reader's queue has room (the
    kernel's unix_dgram_poll looks at the peer only for a connected socket), and connected again
    after a failure: journald may restart, and its socket is then a new one.
    """

    def __init__(self, address: str) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: sockets.socket | None = None

    def send(self, data: bytes, wait: float = 0.0) -> bool:
        """Send ``data`` as one datagram; False if it cannot go within ``wait`` seconds (0: go
        now or never) or the reader is gone."""
        try:
            sock = self._connected()
            if wait and not _writable(sock.fileno(), wait):
                return False
            sock.send(data, _DONTWAIT)
        except BlockingIOError:
            return False
        except OSError as error:
            self.close()
            return self._too_large(data) if error.errno == errno.EMSGSIZE else False
        return True

    def _too_large(self, data: bytes) -> bool:
        """What to do with a datagram the kernel will not take in one piece: drop it."""
        return False

    def _connected(self) -> sockets.socket:
        if self._sock is None:
            sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM | sockets.SOCK_CLOEXEC)
            try:
                sock.connect(self.address)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class JournalOutlet(DatagramOutlet):
    """Entries in the journal's native protocol (log.journal_entry() makes them)."""

    structured = True

    def __init__(self, address: str = JOURNAL_SOCKET) -> None:
        super().__init__(address)

    def _too_large(self, data: bytes) -> bool:
        """As the Native Journal Protocol says for an entry larger than a datagram: write it to
        a sealed memfd and send only the fd. greeterd's own lines never come near the limit
        (about 200 KiB, the socket's send buffer); this keeps an oversized one from being lost."""
        import fcntl  # noqa: PLC0415 (never needed for greeterd's own lines)

        try:
            memfd = syscalls.memfd_create(
                "greeterd-journal", syscalls.MFD_CLOEXEC | syscalls.MFD_ALLOW_SEALING
            )
        except OSError:
            return False
        try:
            syscalls.write(memfd, data)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, seals)
            rights = [(sockets.SOL_SOCKET, sockets.SCM_RIGHTS, memfd.to_bytes(4, "little"))]
            self._connected().sendmsg([], rights, _DONTWAIT)
        except OSError:
            return False
        finally:
            syscalls.close(memfd)
        return True


class StreamOutlet:
    """Lines to a stream, standard error by default, without waiting for its reader.

    A pipe or a terminal is opened again through /proc/self/fd with O_NONBLOCK: that makes a
    file description of greeterd's own, so the other holders of the pipe or terminal (the
    shell, a supervisor) keep theirs as they were. A socket is written with MSG_DONTWAIT; a
    regular file never waits on a reader and is written as it is. Each line is at most
    MAX_LINE_BYTES.
    """

    structured = False

    def __init__(self, fd: int = 2) -> None:
        self.fd = fd
        self._socket: sockets.socket | None = None
        self._own_fd: int | None = None
        self._poll_first = False
        try:
            mode = syscalls.fstat(fd).st_mode
        except OSError:
            return  # no standard error: every write fails and is counted
        if stat.S_ISSOCK(mode):
            self._socket = sockets.socket(fileno=syscalls.dup(fd))
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            try:
                flags = syscalls.O_WRONLY | syscalls.O_NONBLOCK | syscalls.O_CLOEXEC
                self._own_fd = syscalls.open(f"/proc/self/fd/{fd}", flags | syscalls.O_NOCTTY)
            except OSError:
                # No /proc: ask poll() before each write instead (the pipe could fill between
                # the two only if another process writes to it at that moment).
                self._poll_first = True

    def send(self, data: bytes) -> bool:
        """Write one line now, or return False."""
        if len(data) > MAX_LINE_BYTES:
            data = data[: MAX_LINE_BYTES - len(_TRUNCATED)] + _TRUNCATED
        try:
            if self._socket is not None:
                return self._socket.send(data, _DONTWAIT) == len(data)
            if self._poll_first and not _writable(self.fd, 0.0):
                return False
            fd = self.fd if self._own_fd is None else self._own_fd
            return syscalls.write(fd, data) == len(data)
        except OSError:  # BlockingIOError: the reader is behind; anything else: it is gone
            return False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._own_fd is not None:
            syscalls.close(self._own_fd)


class NotifyUnavailable(Exception):
    """NOTIFY_SOCKET names an address greeterd cannot reach without systemd-python."""


class Notifier:
    """sd_notify(3) messages to NOTIFY_SOCKET, a no-op without one.

    WATCHDOG=1 and STATUS= are sent without waiting and dropped when PID 1's queue is full,
    and the call returns False: the loop tries a dropped WATCHDOG=1 again soon
    (lifecycle.WATCHDOG_RETRY), and a STATUS= waits for the next change of counts. READY=1
    and STOPPING=1 wait up to NOTIFY_WAIT. An address that is not an AF_UNIX one (systemd
    also knows vsock:) goes through systemd-python's notify(), which may block; without
    systemd-python such an address raises NotifyUnavailable here, at start, not at READY=1.
    """

    def __init__(self, address: str | None, name: str = "") -> None:
        # "STATUS=NAME: ..." (greeterd --name): each process sharing a socket says which it is.
        self._status = f"STATUS={name}: " if name else ""
        self._outlet = DatagramOutlet(address) if address and address[0] in "/@" else None
        self._blocking: Callable[[str], object] | None = None
        if address is not None and self._outlet is None:
            try:
                self._blocking = blocking_notify()
            except ImportError:
                raise NotifyUnavailable(
                    f"NOTIFY_SOCKET={address} is reached through systemd-python "
                    "(Debian: python3-systemd), which is not installed"
                ) from None
        #: Messages that could not be sent (the loop sends a dropped WATCHDOG=1 again).
        self.dropped = 0

    def __call__(self, state: str) -> bool | None:
        """True: sent; False: dropped (PID 1's queue was full, or it is gone); None: there is
        no NOTIFY_SOCKET, so nothing to send and nothing to send again."""
        if self._status:
            state = state.replace("STATUS=", self._status, 1)
        if self._outlet is None:
            return None if self._blocking is None else bool(self._blocking(state))
        lifecycle = "READY=1" in state or "STOPPING=1" in state
        if self._outlet.send(state.encode(), NOTIFY_WAIT if lifecycle else 0.0):
            return True
        self.dropped += 1
        return False

    def close(self) -> None:
        if self._outlet is not None:
            self._outlet.close()


def _writable(fd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return bool(poller.poll(timeout * 1000))
