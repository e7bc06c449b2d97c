"""Benchmark peer: the Python floor. greeterd's fast path written plainly, with nothing else.

epoll, accept, one non-blocking read, the reply, close: the least CPython can do per
greeting, so greeterd's rate and CPU against it measure greeterd's own work (bounds,
deadlines, validation, counters, status). A client whose name has not arrived yet waits in
epoll with no deadline; names are not validated. Socket-activated like greeterd (fd 3).
tests/benchmarks/per_greeting.py imports accept_ready() and answer() to time them in-process.
"""

from __future__ import annotations

import _socket
import os
import select

TYPE_CHECKING = False
if TYPE_CHECKING:  # collections.abc would cost this peer's cold start a millisecond
    from collections.abc import Callable


def answer(sock: _socket.socket, read_flags: int = 0) -> None:
    """Read the name and reply; BlockingIOError (nothing there yet) goes to the caller."""
    try:
        name = sock.recv(1026, read_flags).split(b"\n", 1)[0].strip()
        sock.send(b"Hello, " + name + b"\n", _socket.MSG_DONTWAIT)
    except BlockingIOError:
        raise
    except OSError:
        pass  # the client left
    sock.close()


def accept_ready(
    accept: Callable[[], tuple[int, object]],
    park: Callable[[_socket.socket], None],
    answer: Callable[[_socket.socket, int], None] = answer,
) -> None:
    """Accept every queued client and answer it; park() those whose name is not there yet."""
    while True:
        try:
            client, _ = accept()
        except BlockingIOError:
            return
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM, 0, client)
        try:
            answer(sock, _socket.MSG_DONTWAIT)
        except BlockingIOError:
            park(sock)


def main() -> None:
    assert os.environ.get("LISTEN_FDS") == "1", "run under systemd-socket-activate"
    listener = _socket.socket(fileno=3)
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(3, select.EPOLLIN)
    accept = listener._accept  # type: ignore[attr-defined]  # the C call socket.accept() wraps
    waiting: dict[int, _socket.socket] = {}

    def park(sock: _socket.socket) -> None:
        waiting[sock.fileno()] = sock
        epoll.register(sock.fileno(), select.EPOLLIN)

    while True:
        for fd, _ in epoll.poll():
            if fd == 3:
                accept_ready(accept, park)
            else:
                answer(waiting.pop(fd))


if __name__ == "__main__":
    main()
