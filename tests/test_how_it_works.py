"""What the kernel does in one greeting, call by call: each claim docs/how-it-works.md makes.

Every test is one claim of the page, checked on the running kernel with real AF_UNIX sockets in
a short temporary directory (no mocks), so the page cannot drift from what Linux does. The
page names each claim's test; the test's docstring states the claim.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import signal
import socket
import stat
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import GREETER_CLIENT, GREETERD, HELLO, greet, require_tool, wait_for

#: The request greeter-client sends for "Zoë": the name in UTF-8 and a newline (5 bytes).
NAME = "Zoë\n".encode()

#: Seconds any single wait in these tests may take before it counts as a failure: far longer
#: than anything here takes on a loaded machine, short enough that a hang fails the test.
BOUND = 10.0


class Sockets:
    """The AF_UNIX stream sockets of one test, each made by the call that makes it in a
    greeting; all closed after the test."""

    def __init__(self) -> None:
        self.made: list[socket.socket] = []

    def new(self) -> socket.socket:
        """socket(AF_UNIX, SOCK_STREAM, 0)."""
        return self._keep(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))

    def listening(self, path: Path, backlog: int = 16) -> socket.socket:
        """systemd's part: socket(), bind() and listen() at ``path``."""
        sock = self.new()
        sock.bind(str(path))
        sock.listen(backlog)
        return sock

    def connected(self, path: Path) -> socket.socket:
        """greeter-client's first two calls: socket() and connect() to ``path``."""
        sock = self.new()
        sock.settimeout(BOUND)
        sock.connect(str(path))
        return sock

    def accepted(self, listener: socket.socket) -> socket.socket:
        """greeterd's accept(), with a bounded wait for its reads."""
        sock, _ = listener.accept()
        sock.settimeout(BOUND)
        return self._keep(sock)

    def _keep(self, sock: socket.socket) -> socket.socket:
        self.made.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.made:
            sock.close()


@pytest.fixture
def sockets() -> Iterator[Sockets]:
    made = Sockets()
    yield made
    made.close()


@pytest.fixture
def path(sock_dir: Path) -> Path:
    return sock_dir / "greeter.sock"


def queued_bytes(sock: socket.socket) -> int:
    """The bytes waiting in the socket's receive queue (ioctl FIONREAD, also called SIOCINQ)."""
    answer = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4)
    return int(struct.unpack("i", answer)[0])


def connection_queue(path: Path) -> tuple[int, int]:
    """What `ss -xl` shows for the listening socket at ``path``: connections waiting to be
    accepted (Recv-Q) and the backlog that bounds them (Send-Q)."""
    listing = subprocess.run(["ss", "-xlnH"], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        if str(path) in fields:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"{path} not in ss -xl output:\n{listing}")


def fill(writer: socket.socket) -> int:
    """Write into ``writer`` without blocking until the kernel refuses more (EAGAIN); return
    how many bytes it took."""
    writer.setblocking(False)
    total = 0
    while True:
        try:
            total += writer.send(b"x" * 65536)
        except BlockingIOError as full:
            refused = full.errno
            break
    assert refused == errno.EAGAIN
    return total


def errno_of(call: Callable[[], object]) -> int | None:
    """The errno of the OSError ``call`` raises; None if it raises none."""
    try:
        call()
    except OSError as error:
        return error.errno
    return None


def drain(reader: socket.socket, count: int) -> bytes:
    """Read exactly ``count`` bytes from ``reader``."""
    data = b""
    while len(data) < count:
        chunk = reader.recv(count - len(data))
        assert chunk, f"end of file after {len(data)} of {count} bytes"
        data += chunk
    return data


def writable(sock: socket.socket) -> bool:
    """Whether poll() says a write would not sleep."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(0))


def asleep_in_a_call_on(thread: threading.Thread, fd: int) -> bool:
    """Whether ``thread`` sleeps in the kernel in a system call whose first argument is ``fd``
    (send() and connect() take the socket first): /proc shows the thread's state and, for a
    thread in a system call, its number and arguments."""
    task = f"/proc/self/task/{thread.native_id}"
    state = Path(f"{task}/stat").read_text().rpartition(")")[2].split()[0]
    call = Path(f"{task}/syscall").read_text().split()  # ["running"] while it runs
    return state == "S" and len(call) > 1 and int(call[1], 16) == fd


class InThread:
    """Run ``call`` in a daemon thread (a daemon, so a test that fails while the call still
    sleeps cannot hang the run); ``error`` is what it raised, if anything."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._call = call
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except BaseException as error:  # handed to the test, which asserts on it
            self.error = error
        finally:
            self.done.set()

    def wait_asleep_on(self, fd: int) -> None:
        """Wait until the call sleeps in the kernel on ``fd``; fail if it returns instead."""
        wait_for(
            lambda: self.done.is_set() or asleep_in_a_call_on(self.thread, fd),
            BOUND,
            interval=0.001,
            what=f"the thread to sleep in a system call on fd {fd}",
        )
        assert not self.done.is_set(), f"the call returned without sleeping: {self.error!r}"

    def finish(self) -> None:
        assert self.done.wait(BOUND), "the call still sleeps"
        assert self.error is None, repr(self.error)


# socket()


def test_a_new_socket_is_an_fd_with_no_name(sockets):
    """socket(): the kernel makes a socket object and gives the caller an fd for it; the
    socket has no name yet (getsockname() is empty), so no other process can find it."""
    sock = sockets.new()
    fd = sock.fileno()
    assert stat.S_ISSOCK(os.fstat(fd).st_mode)
    assert os.readlink(f"/proc/self/fd/{fd}") == f"socket:[{os.fstat(fd).st_ino}]"
    assert sock.getsockname() == ""


# bind()


def test_bind_makes_a_file_of_type_socket(sockets, path):
    """bind(): the socket's name is a new file of type socket at the path. The file holds no
    bytes and is not the socket itself (another inode): it is the name connect() looks up."""
    sock = sockets.new()
    assert not path.exists()
    sock.bind(str(path))
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert os.stat(path).st_size == 0
    assert os.stat(path).st_ino != os.fstat(sock.fileno()).st_ino
    assert sock.getsockname() == str(path)


def test_connect_is_refused_until_listen(sockets, path):
    """After bind() alone, connect() to the path fails with ECONNREFUSED: the file is there,
    but nothing listens. After listen(), the same connect() succeeds."""
    server = sockets.new()
    server.bind(str(path))
    with pytest.raises(ConnectionRefusedError) as refused:
        sockets.new().connect(str(path))
    assert refused.value.errno == errno.ECONNREFUSED
    server.listen(1)
    assert sockets.connected(path).getpeername() == str(path)


# listen()


def test_listen_gives_the_socket_a_connection_queue(sockets, path):
    """listen(): the socket gets a queue of connections, bounded by the backlog. `ss -xl`
    shows both: Recv-Q counts the connections waiting (not their bytes), Send-Q is the
    backlog. accept() takes one off the queue."""
    require_tool("ss", "apt-get install iproute2")
    listener = sockets.listening(path, backlog=5)
    assert connection_queue(path) == (0, 5)
    for _ in range(2):
        sockets.connected(path).sendall(NAME)
    assert connection_queue(path) == (2, 5)
    sockets.accepted(listener)
    assert connection_queue(path) == (1, 5)


def test_the_backlog_is_cut_to_somaxconn(sockets, path):
    """A backlog above net.core.somaxconn is cut to it: systemd-socket-activate asks for
    2147483647 and the kernel keeps somaxconn (4096 since Linux 5.4)."""
    require_tool("ss", "apt-get install iproute2")
    sockets.listening(path, backlog=2147483647)
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert connection_queue(path) == (0, somaxconn)


# connect()


def test_connect_succeeds_before_anyone_accepts(sockets, path):
    """connect() returns at once while nobody calls accept(): the kernel has made the
    server-side socket already and paired it with the client's. The client's peer bears the
    server's name, and the listening socket is readable (an accept() would not wait)."""
    listener = sockets.listening(path)
    client = sockets.connected(path)
    assert client.getpeername() == str(path)
    assert client.getsockname() == ""  # the client itself stays nameless
    assert select.select([listener], [], [], 0)[0] == [listener]


def test_a_full_connection_queue_refuses_a_non_blocking_connect(sockets, path):
    """The connection queue holds backlog + 1 connections on Linux. Past that, a non-blocking
    connect() fails at once with EAGAIN; once accept() makes room, connect() succeeds."""
    listener = sockets.listening(path, backlog=2)
    clients = [sockets.new() for _ in range(4)]
    for client in clients:
        client.setblocking(False)
    for client in clients[:3]:
        client.connect(str(path))
    with pytest.raises(BlockingIOError) as full:
        clients[3].connect(str(path))
    assert full.value.errno == errno.EAGAIN
    sockets.accepted(listener)
    clients[3].connect(str(path))
    assert clients[3].getpeername() == str(path)


def test_a_socket_with_a_timeout_gets_eagain_from_a_full_queue_at_once(sockets, path):
    """A socket with a timeout, as greeter-client's, is non-blocking underneath: its
    connect() to a full queue fails with EAGAIN at once instead of waiting (which is why
    greeter-client tries again until its deadline)."""
    sockets.listening(path, backlog=0)  # holds one connection
    sockets.connected(path)
    client = sockets.new()
    client.settimeout(60)
    started = time.monotonic()
    with pytest.raises(BlockingIOError) as full:
        client.connect(str(path))
    assert full.value.errno == errno.EAGAIN
    assert time.monotonic() - started < BOUND  # not the 60 s of the timeout


def test_a_blocking_connect_sleeps_until_accept_makes_room(sockets, path):
    """A blocking connect() to a full queue sleeps in the kernel until accept() takes a
    connection off the queue, then succeeds."""
    listener = sockets.listening(path, backlog=0)  # holds one connection
    sockets.connected(path)
    client = sockets.new()
    connecting = InThread(lambda: client.connect(str(path)))
    connecting.wait_asleep_on(client.fileno())
    sockets.accepted(listener)
    connecting.finish()
    assert client.getpeername() == str(path)


# send() before accept()


def test_bytes_sent_before_accept_wait_in_the_server_side_socket(sockets, path):
    """The client's send() succeeds before anyone accepts. The bytes wait in the receive queue
    of the server-side socket: they are queued on it the moment accept() returns it."""
    listener = sockets.listening(path)
    client = sockets.connected(path)
    assert client.send(NAME) == len(NAME)
    server = sockets.accepted(listener)
    assert queued_bytes(server) == len(NAME)
    assert server.recv(1024) == NAME


def test_the_server_side_socket_keeps_the_bytes_after_the_client_leaves(sockets, path):
    """The server-side socket does not depend on the client's: a client that sends and closes
    before accept() still leaves a connection to accept, with its bytes, then end of file."""
    listener = sockets.listening(path)
    client = sockets.connected(path)
    client.sendall(NAME)
    client.close()
    server = sockets.accepted(listener)
    assert server.recv(1024) == NAME
    assert server.recv(1024) == b""


def test_a_full_queue_refuses_a_non_blocking_writer(sockets, path):
    """The receive queue has a bound. Written before accept(), a non-blocking client's bytes
    fill it until send() fails with EAGAIN and poll() says the socket is not writable; all of
    them are waiting when the server accepts. Once the reader reads, writing works again."""
    listener = sockets.listening(path)
    client = sockets.connected(path)
    total = fill(client)
    assert not writable(client)
    server = sockets.accepted(listener)
    assert queued_bytes(server) == total
    assert drain(server, total) == b"x" * total
    assert writable(client)
    assert client.send(NAME) == len(NAME)


def test_the_queue_is_bounded_by_the_writers_send_buffer(sockets, path):
    """The bytes wait in the reader's receive queue but count against the writer's send buffer
    (SO_SNDBUF): a writer with a smaller one fills the queue with fewer bytes; a smaller
    receive buffer (SO_RCVBUF) on the reader changes nothing."""
    listener = sockets.listening(path)

    def fill_with(sndbuf: int | None = None, rcvbuf: int | None = None) -> int:
        client = sockets.connected(path)
        server = sockets.accepted(listener)
        if sndbuf:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if rcvbuf:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        total = fill(client)
        assert queued_bytes(server) == total
        return total

    default = fill_with()
    assert fill_with(sndbuf=16384) < default / 4
    assert fill_with(rcvbuf=4096) == default


def test_a_blocking_writer_sleeps_until_the_reader_reads(sockets, path):
    """A blocking send() into a full queue puts the writer to sleep in the kernel; it wakes
    and finishes once the reader reads."""
    listener = sockets.listening(path)
    client = sockets.connected(path)
    server = sockets.accepted(listener)
    total = fill(client)
    client.setblocking(True)
    more = b"y" * 65536
    sending = InThread(lambda: client.sendall(more))
    sending.wait_asleep_on(client.fileno())
    received = drain(server, total + len(more))
    sending.finish()
    assert received == b"x" * total + more


# accept()


def test_accept_returns_a_new_fd(sockets, path):
    """accept() returns a new fd for the server-side socket, not the listening one. It bears
    the server's name and its peer is the client, which has none; the listening socket goes
    on listening."""
    listener = sockets.listening(path)
    client = sockets.connected(path)
    server = sockets.accepted(listener)
    assert server.fileno() != listener.fileno()
    assert os.fstat(server.fileno()).st_ino != os.fstat(listener.fileno()).st_ino
    assert server.getsockname() == str(path)
    assert server.getpeername() == ""
    client.sendall(NAME)
    assert server.recv(1024) == NAME
    assert sockets.connected(path).getpeername() == str(path)


def test_the_listening_socket_never_carries_a_byte(sockets, path):
    """The listening socket only hands out connections. With a connection and its bytes
    queued, recv() on it fails with EINVAL, send() with ENOTCONN, and FIONREAD (the count of
    bytes waiting) with EINVAL."""
    listener = sockets.listening(path)
    sockets.connected(path).sendall(NAME)
    listener.setblocking(False)
    assert errno_of(lambda: listener.recv(1024)) == errno.EINVAL
    assert errno_of(lambda: listener.send(NAME)) == errno.ENOTCONN
    assert errno_of(lambda: queued_bytes(listener)) == errno.EINVAL
    assert sockets.accepted(listener).recv(1024) == NAME


# The real programs, traced


def read_trace(trace: Path) -> list[str]:
    """strace's lines from ``trace``, with the padding before each result squeezed to one
    space (`close(3)     = 0` becomes `close(3) = 0`)."""
    return [re.sub(r"\s+= ", " = ", line) for line in trace.read_text().splitlines()]


def traced_calls(lines: list[str], fd: int) -> list[str]:
    """The names of the successful system calls in ``lines`` whose first argument is ``fd``,
    up to and including its close()."""
    names = []
    for line in lines:
        call = re.match(rf"(?:\d+ +)?(\w+)\({fd}[,)]", line)
        if call is None or "= -1 " in line:
            continue
        names.append(call[1])
        if call[1] == "close":
            break
    return names


@pytest.mark.integration
def test_greeter_client_makes_socket_connect_send_recv(activate, sock_dir):
    """greeter-client's side of a greeting, traced: socket(AF_UNIX, SOCK_STREAM), connect() to
    the path, one send() of the name and one recv() of the greeting (strace shows them as
    sendto and recvfrom), then close(). It never binds, listens or accepts."""
    require_tool("systemd-socket-activate", "apt-get install systemd")
    require_tool("strace", "apt-get install strace")
    daemon = activate()
    trace = sock_dir / "client.trace"
    syscalls = "trace=socket,bind,listen,accept,accept4,connect,getsockname,sendto,recvfrom,close"
    client = subprocess.run(
        [
            *("strace", "-qq", "-o", str(trace), "-e", syscalls),
            *(GREETER_CLIENT, "--socket", str(daemon.path), "--name", "Zoë"),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (client.returncode, client.stdout) == (0, HELLO), client.stderr
    lines = read_trace(trace)
    [made] = [line for line in lines if line.startswith("socket(")]
    assert made.startswith("socket(AF_UNIX, SOCK_STREAM"), made
    fd = int(made.rpartition("= ")[2])
    calls = lines[lines.index(made) + 1 :]
    assert traced_calls(calls, fd) == ["connect", "sendto", "recvfrom", "close"]
    assert f'sun_path="{daemon.path}"' in next(line for line in calls if "connect(" in line)
    assert '"Zo\\303\\253\\n", 5' in next(line for line in calls if "sendto(" in line)
    assert '"Hello, Zo\\303\\253\\n"' in next(line for line in calls if "recvfrom(" in line)
    assert not [line for line in lines if re.match(r"(bind|listen|accept4?)\(", line)]


@pytest.mark.integration
def test_greeterd_gets_fd_3_and_accepts_reads_writes_and_closes(activate, sock_dir):
    """The server's side, traced from systemd-socket-activate's start: socket(), bind() and
    listen() happen before greeterd is exec'd, in the same process. greeterd then accept()s on
    fd 3 (the first fd LISTEN_FDS passes) and makes getsockname() (CPython's check, when it
    wraps the new fd in a socket object, that the fd is a socket), recv() (strace: recvfrom),
    send() (sendto) and close() on the new fd, and nothing else."""
    require_tool("systemd-socket-activate", "apt-get install systemd")
    require_tool("strace", "apt-get install strace")
    trace = sock_dir / "greeterd.trace"
    calls = "trace=execve,socket,bind,listen,accept,accept4,getsockname,recvfrom,sendto,close"
    daemon = activate(wrapper=("strace", "-f", "-qq", "-o", str(trace), "-e", calls))
    assert greet(daemon.path) == HELLO
    lines = trace.read_text().splitlines()
    exec_at = next(i for i, line in enumerate(lines) if f'execve("{GREETERD}"' in line)
    greeterd = int(lines[exec_at].split()[0])
    os.kill(greeterd, signal.SIGTERM)  # greeterd itself: strace is the process we started
    assert daemon.process.wait(BOUND) == 0
    lines = [line.split(None, 1)[1] for line in read_trace(trace)]  # without the pid
    before, after = lines[:exec_at], lines[exec_at + 1 :]
    [made] = [line for line in before if line.startswith("socket(AF_UNIX, SOCK_STREAM")]
    listener = int(made.rpartition("= ")[2])
    bound = f'bind({listener}, {{sa_family=AF_UNIX, sun_path="{daemon.path}"}}'
    assert any(line.startswith(bound) for line in before), bound
    assert any(line.startswith(f"listen({listener}, ") for line in before)
    accept = next(line for line in after if line.startswith("accept4(3, ") and "= -1" not in line)
    fd = int(accept.rpartition("= ")[2])
    assert fd != 3
    served = traced_calls(after[after.index(accept) + 1 :], fd)
    assert served == ["getsockname", "recvfrom", "sendto", "close"]
