"""The private names greeterd uses for speed are there, and each fallback does the same job."""

import socket
import subprocess
import sys

import pytest

from greeterd import speedups
from tests.stdlib_helpers import reachable
from tests.support import connect, require_tool, wait_for

#: Prints what speedups' listen_fds_with_names() (argv[1] "private") or its public fallback
#: finds, run by systemd-socket-activate.
PRINT_LISTEN_FDS = """
import sys
from greeterd import speedups
if sys.argv[1] == "private":
    print(sorted(speedups.listen_fds_with_names().items()))
else:
    print(sorted(speedups.public_listen_fds_with_names().items()))
"""


def test_every_private_name_is_there_on_this_python():
    """On the Python running the tests greeterd takes every fast way; a Python that drops one
    makes this fail (greeterd itself would only be slower)."""
    missing = [name for name, present in speedups.PRIVATE.items() if not present]
    assert missing == []


@pytest.mark.parametrize("make", [speedups.accepter, speedups.PublicAccepter])
def test_both_accepters_return_a_connected_fd_and_leave_the_listener_alone(make, sock_dir):
    """The private call and the public fallback each return the new connection as a bare fd
    (or raise BlockingIOError when nobody waits); the listening socket keeps listening."""
    path = sock_dir / "l.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(8)
        listener.setblocking(False)
        accept = make(listener)
        with pytest.raises(BlockingIOError):
            accept()
        for name in (b"Ada", b"Bob"):
            with connect(path) as client:
                client.sendall(name)
                fd, _ = accept()
                with socket.socket(fileno=fd) as accepted:
                    assert accepted.recv(16) == name
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        if isinstance(accept, speedups.PublicAccepter):
            accept.close()


@pytest.mark.parametrize("which", ["private", "public"])
def test_both_ways_to_read_listen_fds_find_the_named_socket(which, sock_dir):
    """Under systemd-socket-activate the C half and systemd/daemon.py find the same fd 3
    with its name."""
    require_tool("systemd-socket-activate", "apt-get install systemd")
    path = sock_dir / "a.sock"
    process = subprocess.Popen(
        [
            "systemd-socket-activate", "-l", str(path), "--fdname=stream",
            sys.executable, "-c", PRINT_LISTEN_FDS, which,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: reachable(path), what="systemd-socket-activate to listen")
        with connect(path):
            out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    assert out.strip() == "[(3, 'stream')]"
