"""Where greeterd's sockets come from, and what else systemd told it at start.

This is the only module that reads systemd's environment: LISTEN_* (as sd_listen_fds(3)
does, which checks LISTEN_PID and unsets the variables so children do not inherit them),
WATCHDOG_*, NOTIFY_SOCKET and JOURNAL_STREAM. Everything else gets plain values from here.

It uses the C halves of ``socket`` and ``os``, through speedups.py, which says why; for the
same reason it reads LISTEN_* itself instead of through systemd-python, and
tests/test_activation.py holds its reading to systemd-python's on the same environments.

An inherited socket belongs to systemd: greeterd validates it and only accept()s on it; it
never binds, listens, shuts down or unlinks it. Without systemd, greeterd binds a socket of its
own, and unlinks that path on exit only if it is still the socket it bound.
"""

from __future__ import annotations

import stat

from greeterd.speedups import sockets, syscalls, unsetenv

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping

#: Pending connections the kernel queues for a socket greeterd binds itself. Same as the unit's
#: Backlog= and the kernel's SOMAXCONN since Linux 5.4: a burst of clients at start-up waits
#: here instead of being refused (a client sees EAGAIN only once the queue is full).
BACKLOG = 4096

#: Mode of a socket greeterd binds itself, as the unit's SocketMode=: every local user may
#: connect (connect() needs write permission on a UNIX socket).
SOCKET_MODE = 0o666


class ActivationError(Exception):
    """A socket greeterd was given or asked to bind that it cannot serve; the message says why."""


# How an inherited socket is served.
LISTENER = "listener"  # a listening stream or seqpacket socket (Accept=no): accept() clients
DATAGRAM = "datagram"  # a bound datagram socket: one message in, one reply to its sender
CONNECTION = "connection"  # one accepted client (Accept=yes): serve it, then exit
VARLINK = "varlink"  # a listening stream socket named "varlink": clients speak Varlink

#: The first fd systemd passes (SD_LISTEN_FDS_START); the others follow it.
LISTEN_FDS_START = 3
#: More fds than any process may hold (fs.nr_open, 1048576 unless raised): a LISTEN_FDS above
#: it is refused before its names are built, where libsystemd stops at the first fd not open.
MAX_LISTEN_FDS = 1 << 20
#: The largest pid_t: a LISTEN_PID above it is refused, as libsystemd refuses it.
MAX_PID = 2**31 - 1
#: The variables sd_listen_fds(3) reads and then unsets.
LISTEN_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")

#: The fd name systemd gives the connection it passes with Accept=yes.
CONNECTION_NAME = "connection"
#: The fd name (FileDescriptorName=) of a socket whose clients speak Varlink, as hostnamed's
#: second socket is named: packaging/greeter-varlink.socket.
VARLINK_NAME = "varlink"

_SERVED_TYPES = (sockets.SOCK_STREAM, sockets.SOCK_SEQPACKET, sockets.SOCK_DGRAM)
_WHAT_WE_SERVE = "greeterd serves AF_UNIX stream, seqpacket and datagram sockets"


class Endpoint:
    """An adopted socket, its name (FileDescriptorName=) and how to serve it (``kind``)."""

    __slots__ = ("kind", "name", "sock")

    def __init__(self, sock: sockets.socket, name: str, kind: str) -> None:
        self.sock = sock
        self.name = name
        self.kind = kind

    @property
    def message_mode(self) -> bool:
        """One message is one request (seqpacket, datagram), instead of a byte stream."""
        return self.sock.type != sockets.SOCK_STREAM

    def describe(self) -> str:
        """'stream /run/greeter.sock' and the like, for STATUS= and the log."""
        kind = {
            sockets.SOCK_STREAM: "stream",
            sockets.SOCK_SEQPACKET: "seqpacket",
            sockets.SOCK_DGRAM: "datagram",
        }[self.sock.type]
        if self.kind == CONNECTION:
            return f"one {kind} connection ({self.name})"
        address = self.sock.getsockname()
        where = address if isinstance(address, str) and address else repr(address)
        return f"{kind} {where} ({self.name})"


def inherited_endpoints(environ: MutableMapping[str, str]) -> list[Endpoint]:
    """Adopt every socket systemd passed, with its name (empty when not socket-activated).

    The LISTEN_* variables are taken out of ``environ`` and the process's environment, as
    sd_listen_fds(3) does, so that nothing started later takes the sockets for its own.
    Raises ActivationError for malformed variables and for any passed fd greeterd cannot
    serve: a unit that hands over the wrong kind of socket is a configuration error to report,
    not to ignore.
    """
    try:
        passed = listen_fds(environ, syscalls.getpid())
    finally:
        for variable in LISTEN_VARIABLES:
            environ.pop(variable, None)
            unsetenv(variable)
    return [adopt(fd, name) for fd, name in passed.items()]


def listen_fds(environ: Mapping[str, str], pid: int) -> dict[int, str]:
    """{fd: name} of the sockets LISTEN_* pass to process ``pid``, read as sd_listen_fds(3)
    and sd_listen_fds_with_names(3) read them: nothing when LISTEN_PID or LISTEN_FDS is unset
    or LISTEN_PID names another process; names "unknown" without LISTEN_FDNAMES. Values that
    are set but malformed, and names not one per fd, raise ActivationError where the C
    library returns EINVAL. Numbers are taken only as systemd writes them, in ASCII decimal
    without a leading zero: where libsystemd would also read spaces, a sign or a base, this
    refuses."""
    owner = environ.get("LISTEN_PID")
    if owner is None:
        return {}
    if not _is_number(owner) or int(owner) > MAX_PID:
        raise ActivationError(f"LISTEN_PID={owner!r} is not a process id")
    if int(owner) != pid:
        return {}
    count = environ.get("LISTEN_FDS")
    if count is None:
        return {}
    if not _is_number(count) or int(count) > MAX_LISTEN_FDS:
        raise ActivationError(
            f"LISTEN_FDS={count!r} is not a count of fds from 1 to {MAX_LISTEN_FDS}"
        )
    fds = range(LISTEN_FDS_START, LISTEN_FDS_START + int(count))
    joined = environ.get("LISTEN_FDNAMES")
    names = ["unknown"] * len(fds) if joined is None else joined.split(":")
    if len(names) != len(fds):
        raise ActivationError(f"LISTEN_FDNAMES={joined!r} names {len(names)} fds, not {count}")
    return dict(zip(fds, names, strict=True))


def adopt(fd: int, name: str) -> Endpoint:
    """Check an inherited fd and wrap it as a non-blocking socket; nothing else is done to it.

    What it is decides how it is served: a listening stream or seqpacket socket (Accept=no), a
    bound datagram socket, or a connected stream or seqpacket socket (Accept=yes, where systemd
    names it "connection"). Anything else is refused by name.
    """
    try:
        syscalls.set_inheritable(fd, False)  # as sd_listen_fds(3) does: no child inherits it
        sock = sockets.socket(fileno=fd)  # detects family and type without a dup()
    except OSError as error:
        raise ActivationError(f"fd {fd} ({name}) is not a socket ({error.strerror})") from None
    try:
        kind = _kind(sock, name)
    except ActivationError as error:
        sock.detach()  # leave the fd alone: it is not ours to close
        raise ActivationError(f"fd {fd} ({name}) is {error}; {_WHAT_WE_SERVE}") from None
    if kind == DATAGRAM:
        # Ask for each sender's credentials with its message, for the log (the unit's
        # PassCredentials= does the same; SO_PEERCRED has nothing to say about datagrams).
        sock.setsockopt(sockets.SOL_SOCKET, sockets.SO_PASSCRED, 1)
    # Never block the loop. The flag belongs to the socket, shared with systemd and with any
    # other process it hands the socket to, and systemd sets or clears it at each such start
    # as the unit's NonBlocking= says: the units say yes (docs/operating.md, "Using more cores").
    sock.setblocking(False)
    return Endpoint(sock, name, kind)


def _kind(sock: sockets.socket, name: str) -> str:
    if sock.family != sockets.AF_UNIX:
        raise ActivationError(f"a {_constant_name(sock.family, 'AF_')} socket")
    if sock.type not in _SERVED_TYPES:
        raise ActivationError(f"a {_constant_name(sock.type, 'SOCK_')} socket")
    if sock.type == sockets.SOCK_DGRAM:
        if not sock.getsockname():
            raise ActivationError("a datagram socket bound to no address")
        return DATAGRAM
    listening = sock.getsockopt(sockets.SOL_SOCKET, sockets.SO_ACCEPTCONN)
    if listening and name == CONNECTION_NAME:
        raise ActivationError(f"named {CONNECTION_NAME!r} (Accept=yes) but listening")
    if name == VARLINK_NAME:
        if not listening or sock.type != sockets.SOCK_STREAM:
            raise ActivationError(f"named {VARLINK_NAME!r} but not a listening stream socket")
        return VARLINK
    if listening:
        return LISTENER
    try:
        sock.getpeername()
    except OSError:
        raise ActivationError("a socket that is neither listening nor connected") from None
    return CONNECTION


def _constant_name(value: int, prefix: str) -> str:
    """'AF_INET' for 2 with prefix 'AF_': the name socket.py's enums would print."""
    names = sorted(name for name in dir(sockets) if name.startswith(prefix))
    return next((name for name in names if getattr(sockets, name) == value), str(value))


class BoundListener:
    """A socket greeterd bound itself; ``close()`` removes its path if it is still ours."""

    def __init__(self, path: str) -> None:
        self.path = path
        if not path or path.startswith("\0"):  # bind() would autobind, or go abstract
            raise ActivationError(f"cannot bind {path!r}: not a path in the file system")
        _remove_stale_socket(path)
        self.sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
        previous_umask = syscalls.umask(0o777 & ~SOCKET_MODE)  # no window with a wrong mode
        try:
            self.sock.bind(path)
        except OSError as error:
            self.sock.close()
            # strerror is None for what Python refuses itself ("AF_UNIX path too long").
            raise ActivationError(f"cannot bind {path}: {error.strerror or error}") from None
        finally:
            syscalls.umask(previous_umask)
        self._identity = _identity(syscalls.stat(path))
        self.sock.listen(BACKLOG)
        self.sock.setblocking(False)
        self.endpoint = Endpoint(self.sock, "bound", LISTENER)

    def close(self) -> None:
        self.sock.close()
        try:
            if _identity(syscalls.lstat(self.path)) == self._identity:
                syscalls.unlink(self.path)
        except FileNotFoundError:
            pass


def _identity(status: syscalls.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def _remove_stale_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket nobody listens on; refuse anything else in the way."""
    try:
        status = syscalls.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise ActivationError(f"cannot check {path}: {error.strerror}") from None
    if not stat.S_ISSOCK(status.st_mode):
        raise ActivationError(f"{path} exists and is not a socket; not touching it")
    probe = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    probe.setblocking(False)  # a full backlog answers EAGAIN instead of blocking
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        try:
            syscalls.unlink(path)  # nobody listens: left behind by a server that died
        except OSError as error:  # a directory greeterd may not write to
            raise ActivationError(f"cannot remove stale {path}: {error.strerror}") from None
        return
    except BlockingIOError:
        pass
    except OSError as error:
        raise ActivationError(f"cannot check {path}: {error.strerror}") from None
    finally:
        probe.close()
    raise ActivationError(f"{path} is in use: another server listens on it")


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None if none are wanted.

    Like sd_watchdog_enabled(3): a WATCHDOG_PID naming another process means the watchdog is
    not ours. Values that are set but malformed raise ActivationError.
    """
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner and owner != str(pid):
        return None
    if not _is_decimal(usec) or int(usec) == 0:
        raise ActivationError(f"WATCHDOG_USEC={usec!r} is not a positive number of microseconds")
    return int(usec) / 2_000_000


def _is_number(text: str) -> bool:
    """A positive number as systemd writes one: ASCII digits, no leading zero (which
    libsystemd would read as octal)."""
    return _is_decimal(text) and text[0] != "0"


def _is_decimal(text: str) -> bool:
    """ASCII digits only, as systemd writes numbers: str.isdigit() also takes "²" and "٣",
    which int() then refuses or reads."""
    return text.isascii() and text.isdigit()


def notify_address(environ: Mapping[str, str]) -> str | None:
    """Where sd_notify(3) messages go (NOTIFY_SOCKET), or None outside systemd."""
    return environ.get("NOTIFY_SOCKET") or None


def stderr_is_journal(environ: Mapping[str, str], stderr_fd: int = 2) -> bool:
    """True if standard error is connected to the journal (JOURNAL_STREAM names its inode).

    systemd sets JOURNAL_STREAM for services; checking the inode, as sd_journal_stream_fd(3)
    advises, keeps a child whose stderr was redirected from writing structured lines anyway.
    """
    value = environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (_is_decimal(device) and _is_decimal(inode)):
        return False
    try:
        status = syscalls.fstat(stderr_fd)
    except OSError:
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))
