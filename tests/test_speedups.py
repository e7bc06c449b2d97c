"""The private names greeterd uses for speed are there, and each fallback does the same job."""

import os
import socket
import subprocess
import sys

import pytest

from greeterd import speedups
from tests.support import ROOT, connect

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


#: A module that uses speedups' exports correctly: mypy must pass it.
USES_WHAT_RUNS = """
from greeterd.speedups import SIGTERM, set_wakeup_fd, signal, sockets, syscalls

syscalls.mkdir("/nonexistent")
sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM).close()
signal(SIGTERM, lambda signum, frame: None)
set_wakeup_fd(-1)
"""

#: Names that exist only in the public modules (os.py, socket.py, signal.py): each fails at run
#: time on greeterd's private modules, so mypy must reject each.
USES_PUBLIC_ONLY = {
    "makedirs": 'from greeterd.speedups import syscalls\nsyscalls.makedirs("/nonexistent")\n',
    "create_connection": (
        'from greeterd.speedups import sockets\nsockets.create_connection(("::1", 1))\n'
    ),
    "name": "from greeterd.speedups import SIGTERM\nprint(SIGTERM.name)\n",  # an enum's, not int's
}


def test_mypy_holds_speedups_exports_to_what_runs(tmp_path):
    """speedups' exports are typed as the private modules they are at run time (typeshed's
    posix and _socket stubs), not as os and socket: mypy passes what posix, _socket and _signal
    have, and rejects os.makedirs, socket.create_connection and signal.SIGTERM.name (_signal's
    SIGTERM is a plain int) through them."""
    (tmp_path / "uses_what_runs.py").write_text(USES_WHAT_RUNS)
    for name, source in USES_PUBLIC_ONLY.items():
        (tmp_path / f"uses_{name}.py").write_text(source)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            *sorted(str(path) for path in tmp_path.glob("*.py")),
        ],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert not [line for line in errors if "uses_what_runs.py" in line], done.stdout
    for name in USES_PUBLIC_ONLY:
        assert any(f"uses_{name}.py" in line and f'"{name}"' in line for line in errors), (
            f"mypy accepted {name} through speedups:\n{done.stdout}"
        )
