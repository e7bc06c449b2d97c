"""The private names greeterd uses for speed are there, and each fallback does the same job."""

import os
import socket
import subprocess
import sys

import pytest

from greeterd import speedups
from tests.support import connect

#: Prints whether speedups.environment() reads what os.environ reads.
COMPARE_ENVIRONMENT = """
import os
from greeterd import speedups
print(speedups.environment() == dict(os.environ))
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


def test_the_environment_reads_as_os_environ_reads_it():
    """posix.environ holds bytes; environment() decodes them as os.environ does, a value that
    is not UTF-8 included."""
    environ = {b"PATH": os.environb.get(b"PATH", b"/usr/bin"), b"GREETERD_TEST": b"caf\xe9 \xff"}
    done = subprocess.run(
        [sys.executable, "-c", COMPARE_ENVIRONMENT],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == "True\n"


def test_unsetenv_leaves_the_name_neither_in_the_process_nor_in_os_environ(monkeypatch):
    """posix.unsetenv() alone would leave the name in os.environ (which reads posix.environ)."""
    monkeypatch.setenv("GREETERD_TEST", "1")
    speedups.unsetenv("GREETERD_TEST")
    assert "GREETERD_TEST" not in os.environ
    assert "GREETERD_TEST" not in speedups.environment()
    child = subprocess.run(["env"], capture_output=True, text=True, check=True, timeout=60)
    assert "GREETERD_TEST=" not in child.stdout
