"""The private CPython names greeterd uses for speed, in one place.

Each saves start-up time or time per greeting (docs/performance.md), and each has a public
fallback, so that a Python without it makes greeterd slower, never broken:

- ``_socket``, the C half of ``socket``, exported as ``sockets``: importing socket.py builds
  four enums and loads selectors, about 6 ms, a third of a cold start. Its socket type is the
  base of socket.py's.
- ``_signal``, the C half of ``signal``, whose Python half builds enums too: exported are the
  four names greeterd uses, ``signal``, ``set_wakeup_fd``, ``SIGTERM`` and ``SIGINT``.
- ``posix``, the C half of ``os``, exported as ``syscalls``: os.py builds ``os.environ`` on
  ``_collections_abc``, about 1 ms of a cold start, and greeterd calls nothing os.py adds. Its
  ``environ`` holds bytes; environment() gives the ``str`` view os.environ would.
- ``_socket.socket._accept()``, the C call ``socket.accept()`` wraps, behind accepter(): it
  returns the bare fd, and the wrapper's conversion of family and type to enums costs about
  1 µs of a greeting.

No other module names these four: they import what they use from here.

``PRIVATE`` says which of them this interpreter has; tests/test_speedups.py checks that every
one is there on the Python running the tests, and that each fallback does the same job.

systemd-python is not imported at start either: loading libsystemd takes about 1.2 ms, so
activation.py reads LISTEN_FDS itself (tests hold it to systemd-python's answer), and only a
vsock NOTIFY_SOCKET, which outlets.py cannot reach itself, goes through systemd-python.
"""

from __future__ import annotations

import sys

# What the other modules use, under names that say what it is, typed as what runs: typeshed's
# _socket and posix stubs, so mypy rejects a name only socket.py or os.py has (os.makedirs,
# socket.create_connection), which would fail here at run time. Each fallback has every name
# of the private module it replaces, so these types hold for it too. typeshed has no stub for
# _signal: the four names greeterd takes from it are declared with signal.pyi's types, which fit
# them, except that its constants are plain ints where signal.py's are enum members.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket as sockets
    import posix as syscalls
    from collections.abc import Callable
    from signal import set_wakeup_fd, signal
    from typing import Any

    SIGINT: int
    SIGTERM: int
else:
    try:
        import _socket as sockets
    except ImportError:
        import socket as sockets
    try:
        from _signal import SIGINT, SIGTERM, set_wakeup_fd, signal
    except ImportError:
        from signal import SIGINT, SIGTERM, set_wakeup_fd, signal
    try:
        import posix as syscalls
    except ImportError:
        import os as syscalls

__all__ = [
    "PRIVATE",
    "SIGINT",
    "SIGTERM",
    "PublicAccepter",
    "accepter",
    "blocking_notify",
    "environment",
    "set_wakeup_fd",
    "signal",
    "sockets",
    "syscalls",
    "unsetenv",
]

#: Which private names this interpreter has: with one missing, greeterd takes the public way.
PRIVATE: dict[str, bool] = {
    "_socket": sockets.__name__ == "_socket",
    "_signal": signal.__module__ == "_signal",  # signal.py wraps signal() in a function of its own
    "_socket.socket._accept": hasattr(sockets.socket, "_accept"),
    "posix": syscalls.__name__ == "posix",
}


def environment() -> dict[str, str]:
    """The environment as ``os.environ`` reads it: decoded with the file system encoding,
    undecodable bytes kept as surrogates."""
    if syscalls.__name__ != "posix":
        import os  # noqa: PLC0415 (only where posix is missing)

        return dict(os.environ)
    encoding = sys.getfilesystemencoding()
    return {
        key.decode(encoding, "surrogateescape"): value.decode(encoding, "surrogateescape")
        for key, value in syscalls.environ.items()
    }


def unsetenv(name: str) -> None:
    """Take ``name`` out of the process's environment, for children, and out of what
    environment() and os.environ read (posix.unsetenv() alone leaves it there)."""
    if syscalls.__name__ == "posix":
        syscalls.environ.pop(name.encode(sys.getfilesystemencoding(), "surrogateescape"), None)
        syscalls.unsetenv(name)
    else:
        import os  # noqa: PLC0415 (only where posix is missing)

        os.environ.pop(name, None)  # os.environ unsets it too


def blocking_notify() -> Callable[[str], object]:
    """sd_notify(3) through systemd-python, which may block: outlets.Notifier uses it only for
    addresses it cannot reach itself (vsock), and imports it only then. ImportError: systemd-python
    is not installed (the Debian package only Recommends it)."""
    from systemd import daemon  # noqa: PLC0415 (loads libsystemd: only for a vsock address)

    notify: Callable[[str], object] = daemon.notify  # systemd-python ships no type hints
    return notify


def accepter(listener: sockets.socket) -> Callable[[], tuple[int, Any]]:
    """A call that accepts one connection on ``listener`` and returns (fd, address): its C
    ``_accept`` where this Python has it, else a PublicAccepter."""
    private: Callable[[], tuple[int, Any]] | None = getattr(listener, "_accept", None)
    return private if private is not None else PublicAccepter(listener)


class PublicAccepter:
    """The fallback: accept() through socket.py, the new socket detached to a bare fd. It works on a
    duplicate of the listening fd (a dup shares the socket, so nothing about systemd's socket
    changes), open until close(): a server keeps it for as long as it serves."""

    def __init__(self, listener: sockets.socket) -> None:
        import socket  # noqa: PLC0415 (only where the private call is missing)

        duplicate = syscalls.dup(listener.fileno())
        self._public = socket.socket(listener.family, listener.type, listener.proto, duplicate)

    def __call__(self) -> tuple[int, Any]:
        connection, address = self._public.accept()
        return connection.detach(), address

    def close(self) -> None:
        self._public.close()
