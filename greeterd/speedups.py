"""The private CPython names greeterd uses for speed, in one place.

Each saves start-up time or time per greeting (README, Performance), and each has a public
fallback, so that a Python without it makes greeterd slower, never broken:

- ``_socket``, the C half of ``socket``: importing socket.py builds four enums and loads
  selectors, about 6 ms, a third of a cold start. Its socket type is the base of socket.py's.
- ``_signal``, the C half of ``signal``, whose Python half builds enums too.
- ``posix``, the C half of ``os``: os.py builds ``os.environ`` on ``_collections_abc``, about
  1 ms of a cold start, and greeterd calls nothing os.py adds. Its ``environ`` holds bytes;
  environment() gives the ``str`` view os.environ would.
- ``_socket.socket._accept()``, the C call ``socket.accept()`` wraps: it returns the bare fd,
  and the wrapper's conversion of family and type to enums costs about 1 µs of a greeting.

``PRIVATE`` says which of them this interpreter has; tests/test_speedups.py checks that every
one is there on the Python running the tests, and that each fallback does the same job.

systemd-python is not imported at start either: loading libsystemd takes about 1.2 ms, so
activation.py reads LISTEN_FDS itself (tests hold it to systemd-python's answer), and only a
vsock NOTIFY_SOCKET, which outlets.py cannot reach itself, goes through systemd-python.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket as sockets
    import os as posix  # posix's functions, with the stubs os has
    import signal as signals  # _signal's functions, with the stubs signal.py has
    from collections.abc import Callable
    from typing import Any
else:
    try:
        import _socket as sockets
    except ImportError:
        import socket as sockets
    try:
        import _signal as signals
    except ImportError:
        import signal as signals
    try:
        import posix
    except ImportError:
        import os as posix

__all__ = [
    "PRIVATE",
    "PublicAccepter",
    "accepter",
    "environment",
    "notify",
    "posix",
    "signals",
    "sockets",
    "unsetenv",
]

#: Which private names this interpreter has: with one missing, greeterd takes the public way.
PRIVATE: dict[str, bool] = {
    "_socket": sockets.__name__ == "_socket",
    "_signal": signals.__name__ == "_signal",
    "_socket.socket._accept": hasattr(sockets.socket, "_accept"),
    "posix": posix.__name__ == "posix",
}


def environment() -> dict[str, str]:
    """The environment as ``os.environ`` reads it: decoded with the file system encoding,
    undecodable bytes kept as surrogates."""
    if posix.__name__ != "posix":
        return dict(posix.environ)
    encoding = sys.getfilesystemencoding()
    raw: dict[bytes, bytes] = posix.environ  # type: ignore[assignment]
    return {
        key.decode(encoding, "surrogateescape"): value.decode(encoding, "surrogateescape")
        for key, value in raw.items()
    }


def unsetenv(name: str) -> None:
    """Take ``name`` out of the process's environment, for children, and out of what
    environment() and os.environ read (posix.unsetenv() alone leaves it there)."""
    if posix.__name__ == "posix":
        raw: dict[bytes, bytes] = posix.environ  # type: ignore[assignment]
        raw.pop(name.encode(sys.getfilesystemencoding(), "surrogateescape"), None)
        posix.unsetenv(name)
    else:
        posix.environ.pop(name, None)  # os.environ unsets it too


def notify(state: str) -> object:
    """sd_notify(3) through systemd-python, which may block: outlets.Notifier uses it only for
    addresses it cannot reach itself (vsock). Imported on the first call, never at start."""
    from systemd import daemon  # noqa: PLC0415 (loads libsystemd: only for a vsock address)

    return daemon.notify(state)


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

        duplicate = posix.dup(listener.fileno())
        self._public = socket.socket(listener.family, listener.type, listener.proto, duplicate)

    def __call__(self) -> tuple[int, Any]:
        connection, address = self._public.accept()
        return connection.detach(), address

    def close(self) -> None:
        self._public.close()
