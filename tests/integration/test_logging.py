"""greeterd keeps greeting when nobody reads its log or its sd_notify messages."""

import fcntl
import os
import re
import socket
import subprocess
import time
from pathlib import Path

from tests.stdlib_helpers import reachable
from tests.support import GREETERD, HELLO, greet, wait_for

#: One page: the pipe fills after a few dozen lines.
SMALL_PIPE = 4096
GREETINGS = 300
LOST = re.compile(rb"(\d+) log lines lost.*GREETER_LINES_LOST=\1")


def activated(path: Path, *options: str, stderr: int) -> subprocess.Popen[bytes]:
    """greeterd under systemd-socket-activate on ``path``, listening when this returns."""
    process = subprocess.Popen(
        ["systemd-socket-activate", *options, "-l", str(path), GREETERD, "--log-level", "debug"],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    wait_for(lambda: reachable(path), what=f"a listener on {path}")
    return process


def drain(fd: int) -> bytes:
    """Everything the pipe holds now."""
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    return process.wait(15)


def test_a_standard_error_nobody_reads_never_stops_a_greeting(sock_dir):
    """With --log-level debug (a line per greeting) and standard error on a one-page pipe
    nobody reads, every client is still greeted; once the pipe is read again, one line says
    how many were lost, and the lines written and lost add up to the greetings."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, SMALL_PIPE)
    path = sock_dir / "greeter.sock"
    process = activated(path, stderr=write_end)
    os.close(write_end)
    try:
        for number in range(GREETINGS):
            assert greet(path, f"n{number}") == f"Hello, n{number}\n".encode()
        written = drain(read_end)
        assert greet(path, "last") == b"Hello, last\n"
        written += drain(read_end)  # the line was written before the reply was sent
    finally:
        assert stop(process) == 0
        os.close(read_end)
    (lost,) = (int(match.group(1)) for match in LOST.finditer(written))
    greeted = written.count(b"debug: greeted")
    print(f"stderr pipe: {greeted} greeting lines written, {lost} lost")
    assert lost > 0, "the pipe never filled: the test proved nothing"
    assert greeted + lost == GREETINGS + 1


def test_a_notify_socket_nobody_reads_never_stops_a_greeting(sock_dir):
    """NOTIFY_SOCKET's queue full (PID 1 busy) and the watchdog pinging every 10 ms: WATCHDOG=1
    and STATUS= are dropped, never waited for; every client is greeted; SIGTERM still ends
    greeterd with 0 (STOPPING=1 waits a moment for room, then gives up)."""
    notify_path = sock_dir / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as pid1:
        pid1.bind(str(notify_path))
        path = sock_dir / "greeter.sock"
        process = activated(
            path,
            f"--setenv=NOTIFY_SOCKET={notify_path}",
            "--setenv=WATCHDOG_USEC=20000",
            stderr=subprocess.DEVNULL,
        )
        try:
            # For a second: about 100 pings, ten times what the unread queue holds.
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                assert greet(path) == HELLO
        finally:
            assert stop(process) == 0
        messages = []
        pid1.setblocking(False)
        while True:
            try:
                messages.append(pid1.recv(4096))
            except BlockingIOError:
                break
    assert messages[0].startswith(b"READY=1")
    assert b"WATCHDOG=1" in messages, "the watchdog never pinged: the test proved nothing"
