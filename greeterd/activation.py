"""Where greeterd's sockets come from, and what else systemd told it at start.

This is the only module that reads systemd's environment: LISTEN_* (through systemd-python,
which checks LISTEN_PID and unsets the variables so children do not inherit them),
WATCHDOG_* and JOURNAL_STREAM. Everything else gets plain values from here.

An inherited socket belongs to systemd: greeterd validates it and only accept()s on it; it
never binds, listens, shuts down or unlinks it. Without systemd, greeterd binds a socket of its
own, and unlinks that path on exit only if it is still the socket it bound.
"""

from __future__ import annotations

import os
import socket
import stat

from systemd import daemon

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: Pending connections the kernel queues for a socket greeterd binds itself. Same as the unit's
#: Backlog= and the kernel's SOMAXCONN since Linux 5.4: a burst of clients at start-up waits
#: here instead of being refused (a client sees EAGAIN only once the queue is full).
BACKLOG = 4096

#: Mode of a socket greeterd binds itself, as the unit's SocketMode=: every local user may
#: connect (connect() needs write permission on a UNIX socket).
SOCKET_MODE = 0o666


class ActivationError(Exception):
    """A socket greeterd was given or asked to bind that it cannot serve; the message says why."""


def inherited_listeners() -> list[socket.socket]:
    """Adopt every socket systemd passed (empty when not socket-activated).

    Raises ActivationError for any passed fd greeterd cannot serve: a unit that hands over the
    wrong kind of socket is a configuration error to report, not to ignore.
    """
    return [adopt_listener(fd) for fd in daemon.listen_fds()]


def adopt_listener(fd: int) -> socket.socket:
    """Wrap an inherited fd as a non-blocking socket after checking it is what greeterd serves:
    a listening AF_UNIX stream socket. Nothing is done to the socket besides O_NONBLOCK.
    """
    try:
        sock = socket.socket(fileno=fd)  # detects family and type without a dup()
    except OSError as error:
        raise ActivationError(f"fd {fd} is not a socket ({error.strerror})") from None
    problem = _unservable(sock)
    if problem:
        sock.detach()  # leave the fd alone: it is not ours to close
        raise ActivationError(
            f"fd {fd} is {problem}; greeterd serves listening AF_UNIX stream sockets"
        )
    # Accept until EAGAIN without blocking the loop. This flag is shared with systemd's copy of
    # the socket, which systemd itself resets (NonBlocking=) for the next instance.
    sock.setblocking(False)
    return sock


def _unservable(sock: socket.socket) -> str | None:
    if sock.family != socket.AF_UNIX:
        return f"a {getattr(sock.family, 'name', sock.family)} socket"
    if sock.type != socket.SOCK_STREAM:
        return f"a {getattr(sock.type, 'name', sock.type)} socket"
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return "a stream socket that is not listening"
    return None


class BoundListener:
    """A socket greeterd bound itself; ``close()`` removes its path if it is still ours."""

    def __init__(self, path: str) -> None:
        self.path = path
        _remove_stale_socket(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        previous_umask = os.umask(0o777 & ~SOCKET_MODE)  # no window with a wrong mode
        try:
            self.sock.bind(path)
        except OSError as error:
            self.sock.close()
            raise ActivationError(f"cannot bind {path}: {error.strerror}") from None
        finally:
            os.umask(previous_umask)
        self._identity = _identity(os.stat(path))
        self.sock.listen(BACKLOG)
        self.sock.setblocking(False)

    def close(self) -> None:
        self.sock.close()
        try:
            if _identity(os.lstat(self.path)) == self._identity:
                os.unlink(self.path)
        except FileNotFoundError:
            pass


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def _remove_stale_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket nobody listens on; refuse anything else in the way."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        raise ActivationError(f"cannot check {path}: {error.strerror}") from None
    if not stat.S_ISSOCK(status.st_mode):
        raise ActivationError(f"{path} exists and is not a socket; not touching it")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)  # a full backlog answers EAGAIN instead of blocking
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)  # nobody listens: left behind by a server that died
            return
        except BlockingIOError:
            pass
        except OSError as error:
            raise ActivationError(f"cannot check {path}: {error.strerror}") from None
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
    if not usec.isdigit() or int(usec) == 0:
        raise ActivationError(f"WATCHDOG_USEC={usec!r} is not a positive number of microseconds")
    return int(usec) / 2_000_000


def stderr_is_journal(environ: Mapping[str, str], stderr_fd: int = 2) -> bool:
    """True if standard error is connected to the journal (JOURNAL_STREAM names its inode).

    systemd sets JOURNAL_STREAM for services; checking the inode, as sd_journal_stream_fd(3)
    advises, keeps a child whose stderr was redirected from writing structured lines anyway.
    """
    value = environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stderr_fd)
    except OSError:
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))
