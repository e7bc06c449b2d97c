"""Helpers the tests share: real sockets, real processes, short paths."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from greeterd import client, daemon, log, protocol
from greeterd.activation import DATAGRAM, LISTENER, VARLINK, Endpoint
from greeterd.server import Server
from tests import stdlib_helpers
from tests.stdlib_helpers import reachable

#: The checkout's top directory.
ROOT = Path(__file__).resolve().parents[1]

#: The installed entry points, next to the interpreter running the tests.
BIN = Path(sys.executable).parent
GREETERD = str(BIN / "greeterd")
GREETER_CLIENT = str(BIN / "greeter-client")


def skip_or_fail(message: str) -> None:
    """Skip a test that this machine cannot run, except in CI (CI=true), where a skip would
    hide a broken path and is a failure instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run these tests")
    pytest.skip(message)


def require_tool(tool: str, install_hint: str) -> None:
    """Skip (or, in CI, fail) a test whose tool is missing."""
    if shutil.which(tool) is None:
        skip_or_fail(f"{tool} is missing ({install_hint})")


def raise_open_files(sockets: int) -> None:
    """stdlib_helpers.raise_open_files() for a test: where even the hard limit is too low, the
    test skips (fails in CI) with the number it needs."""
    problem = stdlib_helpers.raise_open_files(sockets)
    if problem:
        skip_or_fail(problem)


#: Builds a wheel and an sdist of the project in the current directory into ./dist with the
#: setuptools the interpreter has, as pip's build would, warnings shown as pip shows them.
BUILD_PROJECT = """
import setuptools, setuptools.build_meta as backend
print("setuptools", setuptools.__version__)
print(backend.build_wheel("dist"))
print(backend.build_sdist("dist"))
"""


#: A .pth file that ends any interpreter start that runs site: proof, when a program still
#: runs beside it, that it started without site.
POISON = "import sys; sys.exit('site ran')\n"

#: Run as `python -IS -c WHERE_THE_LAUNCHER_LOOKS LAUNCHER`: puts on sys.path what the
#: launcher's site_packages() returns (loaded without running greeterd) and prints where
#: greeterd and systemd.daemon are then found, one path a line.
WHERE_THE_LAUNCHER_LOOKS = """
import runpy, sys
sys.path.extend(runpy.run_path(sys.argv[1], run_name="launcher")["site_packages"]())
import greeterd, systemd.daemon
print(greeterd.__file__)
print(systemd.daemon.__file__)
"""

#: The reply to greet() with its default name.
HELLO = "Hello, Zoë\n".encode()


class MemoryOutlet:
    """A log outlet that keeps what it is sent: text lines, or journal entries when
    ``structured``. ``taking`` False makes every send fail, as a full pipe or a stopped
    journald would."""

    def __init__(self, *, structured: bool = False) -> None:
        self.structured = structured
        self.taking = True
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> bool:
        if self.taking:
            self.sent.append(data)
        return self.taking

    @property
    def text(self) -> str:
        return b"".join(self.sent).decode()


def short_temp_dir() -> Path:
    """A fresh directory whose socket paths stay far below sun_path's 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="gd-", dir="/tmp"))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def connect(path: str | Path, timeout: float = 5.0) -> socket.socket:
    """A stream socket connected to ``path``, each later call bounded by ``timeout``.

    connect() waits its turn in the listener's backlog as greeter-client's does, for at most
    ``timeout``: a test's burst of clients may outrun a server that a busy machine keeps off
    the CPU for a moment, and a full backlog is then something to wait for, not an error."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect_in_turn(sock, str(path), time.monotonic() + timeout)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(timeout)
    return sock


def read_reply(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    reply = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return reply
        if not chunk:
            return reply
        reply += chunk


def exchange(path: str | Path, request: bytes, *, half_close: bool = False) -> bytes:
    """Send ``request`` on a new connection and return the whole reply."""
    with connect(path) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_reply(sock)


def greet(path: str | Path, name: str = "Zoë") -> bytes:
    return exchange(path, name.encode() + b"\n")


def try_greet(path: str | Path, name: str = "Zoë") -> bytes | None:
    """greet(), or None while nobody answers on ``path`` yet."""
    try:
        return greet(path, name)
    except (FileNotFoundError, ConnectionRefusedError):
        return None


T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str = "condition",
    *,
    until: Callable[[T], object] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that; fail with
    ``what`` on timeout. The one poll-until-true loop of the tests: each call site states its
    own timeout, interval and message.

    With ``until``, ``condition`` reads a value and ``until(value)`` decides: the value is
    returned even when falsy ("0", ""), and the failure says the last value read.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if until(value) if until is not None else value:
            return value
        if time.monotonic() > deadline:
            last = "" if until is None else f"; last read {value!r}"
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{last}")
        time.sleep(interval)


class Activated:
    """greeterd started the real socket-activation way, by systemd-socket-activate.

    systemd-socket-activate binds and listens on ``path``, then execs greeterd (same pid)
    with LISTEN_FDS on the first connection. ``log`` is greeterd's standard error. ``wrapper``
    runs systemd-socket-activate; ``launcher`` runs greeterd.
    """

    def __init__(
        self,
        directory: Path,
        *args: str,
        wrapper: tuple[str, ...] = (),
        launcher: tuple[str, ...] = (),
        flags: tuple[str, ...] = (),
        wait: bool = True,
    ) -> None:
        self.path = directory / "greeter.sock"
        self.log_path = directory / "greeterd.log"
        activate = ["systemd-socket-activate", *flags, "-l", str(self.path)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [*wrapper, *activate, *launcher, GREETERD, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            try:
                wait_for(
                    lambda: reachable(self.path),
                    what=f"systemd-socket-activate to listen on {self.path}",
                )
            except AssertionError:
                self.kill()
                raise

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        wait_for(lambda: text in self.log, timeout, what=f"{text!r} in log")
        return self.log

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM greeterd and return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()


class SelfBound:
    """greeterd started without systemd: it binds ``--socket path`` itself. Its standard
    error is a pipe, read by stop() or ``process.communicate()``."""

    def __init__(self, path: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.path = path
        self.process = subprocess.Popen(
            [GREETERD, "--socket", str(path), *args],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def ready(self) -> SelfBound:
        wait_for(lambda: reachable(self.path) or self.process.poll() is not None, what="the socket")
        assert self.process.poll() is None, self.process.communicate()[1]
        return self

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str]:
        """Send ``signum`` (SIGTERM) and return greeterd's exit status and standard error."""
        self.process.send_signal(signum)
        _, err = self.process.communicate(timeout=15)
        return self.process.returncode, err


def command_line(pid: int) -> list[str]:
    """The arguments process ``pid`` runs with now (after any exec)."""
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def children(pid: int) -> list[int]:
    """The pids of process ``pid``'s children."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_number(pid: int, file: str, label: str, column: int) -> int:
    """A number from /proc/PID/FILE: the given column of the line that starts with label."""
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        if line.startswith(label):
            return int(line.split()[column])
    raise AssertionError(f"no {label!r} in /proc/{pid}/{file}")


def rss_kib(pid: int) -> int:
    return proc_number(pid, "status", "VmRSS:", 1)


def varlink_call(method: str, **parameters: object) -> bytes:
    """One Varlink call: a JSON object ended by NUL."""
    return json.dumps({"method": method, "parameters": parameters}).encode() + b"\0"


def varlink_replies(sock: socket.socket, count: int) -> list[dict[str, Any]]:
    """The next ``count`` NUL-ended Varlink replies on ``sock``."""
    data = b""
    while data.count(b"\0") < count:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return [json.loads(message) for message in data.split(b"\0")[:count]]


def error_line(reason: str) -> bytes:
    return protocol.format_error(reason)


# -- A Server in a thread on real sockets: the harness of test_server, test_lines,
# -- test_datagrams, test_sessions and test_tally (their ``serve`` fixture is in conftest.py).


def listener(path: Path, kind: int = socket.SOCK_STREAM) -> Endpoint:
    """A listening stream (or seqpacket) socket at ``path``, as systemd would pass it."""
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.bind(str(path))
    sock.listen(4096)
    sock.setblocking(False)
    return Endpoint(sock, "test", LISTENER)


def datagram_socket(path: Path, *, pass_credentials: bool = True) -> Endpoint:
    """A bound datagram socket at ``path``; activation.adopt() sets SO_PASSCRED on these."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, int(pass_credentials))
    sock.setblocking(False)
    return Endpoint(sock, "datagram", DATAGRAM)


def datagram_client(path: Path) -> socket.socket:
    """A datagram socket bound to an abstract address (to be replied to), sending to ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.bind("")
    sock.connect(str(path))
    return sock


class Running:
    """A Server serving ``endpoints`` in a background thread, with what it logged and
    notified (or sending its sd_notify lines through ``notify``, an outlets.Notifier);
    ``path`` is the first endpoint's socket path."""

    def __init__(
        self,
        endpoints: list[Endpoint],
        notify: Callable[[str], object] | None = None,
        **settings: object,
    ) -> None:
        self.endpoints = endpoints
        name = endpoints[0].sock.getsockname()
        self.path = Path(name) if isinstance(name, str) and name else None
        self.outlet = MemoryOutlet()
        self.notified: list[str] = []
        self.server = Server(
            endpoints,
            log.Log(log.DEBUG, self.outlet),
            self.notified.append if notify is None else notify,
            **settings,  # type: ignore[arg-type]
        )
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK)
        self.server.listeners.watch_wakeup_fd(self._wake_read, daemon.STOP_SIGNALS)
        self.thread = threading.Thread(target=self.server.run)
        self.thread.start()

    @property
    def log(self) -> str:
        return self.outlet.text

    def sigterm(self) -> None:
        """What signal.set_wakeup_fd does when SIGTERM arrives."""
        os.write(self._wake_write, bytes([signal.SIGTERM]))

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server loop did not return"

    def close(self) -> None:
        if self.thread.is_alive():
            self.sigterm()
            self.join()
        for endpoint in self.endpoints:
            endpoint.sock.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def unread_datagram_socket(path: Path) -> socket.socket:
    """A bound datagram socket, as journald's or PID 1's would be while they are stopped."""
    reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    reader.bind(str(path))
    return reader


def varlink_listener(path: Path) -> Endpoint:
    """A listening stream socket named "varlink", as greeter-varlink.socket passes it."""
    endpoint = listener(path)
    return Endpoint(endpoint.sock, "varlink", VARLINK)
