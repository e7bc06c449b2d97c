"""The private CPython and python-systemd names greeterd uses for speed, in one place.

Each saves start-up time or time per greeting (README, Performance), and each has a public
fallback, so that a Python or a systemd-python without it makes greeterd slower, never broken:

- ``_socket``, the C half of ``socket``: importing socket.py builds four enums and loads
  selectors, about 6 ms, a third of a cold start. Its socket type is the base of socket.py's.
- ``_signal``, the C half of ``signal``, whose Python half builds enums too.
- ``_socket.socket._accept()``, the C call ``socket.accept()`` wraps: it returns the bare fd,
  and the wrapper's conversion of family and type to enums costs about 1 µs of a greeting.
- ``systemd._daemon``, the C half of ``systemd.daemon``, which imports socket.py.

``PRIVATE`` says which of them this interpreter has; tests/test_speedups.py checks that every
one is there on the Python running the tests, and that each fallback does the same job.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket as sockets
    import signal as signals  # _signal's functions, with the stubs signal.py has
    from collections.abc import Callable
    from typing import Any

    from systemd import daemon as systemd_daemon
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
        from systemd import _daemon as systemd_daemon
    except ImportError:
        from systemd import daemon as systemd_daemon

__all__ = [
    "PRIVATE",
    "PublicAccepter",
    "accepter",
    "listen_fds_with_names",
    "notify",
    "public_listen_fds_with_names",
    "signals",
    "sockets",
]

#: Which private names this interpreter has: with one missing, greeterd takes the public way.
PRIVATE: dict[str, bool] = {
    "_socket": sockets.__name__ == "_socket",
    "_signal": signals.__name__ == "_signal",
    "_socket.socket._accept": hasattr(sockets.socket, "_accept"),
    "systemd._daemon": systemd_daemon.__name__ == "systemd._daemon",
}

#: sd_notify(3): a no-op without NOTIFY_SOCKET (both halves of systemd.daemon have it). It may
#: block, so outlets.Notifier uses it only for addresses it cannot reach itself (vsock).
notify: Callable[[str], object] = systemd_daemon.notify


def listen_fds_with_names() -> dict[int, str]:
    """{fd: name} of the sockets systemd passed; LISTEN_PID is checked and the variables are
    unset, so children do not inherit them. systemd.daemon.listen_fds_with_names(), from
    whichever half of it this systemd-python has."""
    if PRIVATE["systemd._daemon"]:
        count, *names = systemd_daemon._listen_fds_with_names(True)
        first: int = systemd_daemon.LISTEN_FDS_START
        return {first + i: names[i] for i in range(count)}
    return public_listen_fds_with_names()


def public_listen_fds_with_names() -> dict[int, str]:
    """The fallback: systemd/daemon.py's own function (it imports socket.py)."""
    from systemd import daemon  # noqa: PLC0415 (only where the C half is missing)

    fds: dict[int, str] = daemon.listen_fds_with_names(True)
    return fds


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

        duplicate = os.dup(listener.fileno())
        self._public = socket.socket(listener.family, listener.type, listener.proto, duplicate)

    def __call__(self) -> tuple[int, Any]:
        connection, address = self._public.accept()
        return connection.detach(), address

    def close(self) -> None:
        self._public.close()
