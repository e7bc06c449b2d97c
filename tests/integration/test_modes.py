"""Every way systemd hands sockets over, through systemd-socket-activate on this host:
Accept=yes connections, seqpacket and datagram sockets, and several named sockets at once."""

import os
import socket
import subprocess
import sys

from tests.stdlib_helpers import reachable
from tests.support import (
    GREETER_CLIENT,
    GREETERD,
    HELLO,
    children,
    command_line,
    greet,
    wait_for,
)


def client(path, socket_type: str, name: str = "Zoë") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GREETER_CLIENT, "--socket", str(path), "--socket-type", socket_type, "--name", name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def message_exchange(path, kind: int, message: bytes) -> bytes:
    """One message to a seqpacket or datagram socket, one message back."""
    with socket.socket(socket.AF_UNIX, kind) as sock:
        sock.settimeout(10)
        if kind == socket.SOCK_DGRAM:
            sock.bind("")  # an abstract address to reply to
        sock.connect(str(path))
        sock.send(message)
        return sock.recv(4096)


#: Runs the command after it as a child whose LISTEN_PID names it, and appends the child's
#: exit status to the file argv[1]: how a test sees each Accept=yes greeterd's status.
#: systemd 256 and later also pass LISTEN_PIDFDID, the pidfd of the process meant; libsystemd
#: checks it when set, so the child goes without it.
RECORD_EXIT_STATUS = """
import os, sys
child = os.fork()
if child == 0:
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ.pop("LISTEN_PIDFDID", None)
    os.execv(sys.argv[2], sys.argv[2:])
status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
with open(sys.argv[1], "a") as statuses:
    statuses.write(f"{status}\\n")
"""


def test_accept_yes_spawns_one_greeterd_per_connection(activate, sock_dir):
    """--accept passes each connection (named "connection") to a new greeterd, which greets
    that one client and exits 0."""
    statuses = sock_dir / "statuses"
    launcher = (sys.executable, "-c", RECORD_EXIT_STATUS, str(statuses))
    daemon = activate(flags=("--accept", "--fdname=connection"), launcher=launcher)
    for index in range(10):
        assert greet(daemon.path, f"client {index}") == f"Hello, client {index}\n".encode()
    done = client(daemon.path, "stream")
    assert (done.returncode, done.stdout) == (0, "Hello, Zoë\n"), done.stderr
    wait_for(
        lambda: statuses.exists() and len(statuses.read_text().split()) == 11,
        what="11 greeterd processes to exit",
    )
    assert statuses.read_text().split() == ["0"] * 11, daemon.log


def test_accept_yes_without_a_name_is_recognised_by_the_connected_socket(activate):
    """A connected socket is one client even when the fd carries no name."""
    daemon = activate(flags=("--accept",))
    assert greet(daemon.path) == HELLO


def test_accept_yes_seqpacket_connections_are_served_message_by_message(activate):
    """--accept --seqpacket: each connection is a connected seqpacket socket."""
    daemon = activate(flags=("--accept", "--seqpacket", "--fdname=connection"))
    assert message_exchange(daemon.path, socket.SOCK_SEQPACKET, b"Ada") == b"Hello, Ada\n"
    done = client(daemon.path, "seqpacket")
    assert (done.returncode, done.stdout) == (0, "Hello, Zoë\n"), done.stderr


def test_a_seqpacket_listener_answers_each_message(activate):
    """Accept=no on SOCK_SEQPACKET: one message is one name, one message comes back."""
    daemon = activate(flags=("--seqpacket",))
    done = client(daemon.path, "seqpacket")
    assert (done.returncode, done.stdout) == (0, "Hello, Zoë\n"), done.stderr
    assert message_exchange(daemon.path, socket.SOCK_SEQPACKET, b"Ada\n") == b"Hello, Ada\n"
    refused = message_exchange(daemon.path, socket.SOCK_SEQPACKET, b"\x1b[31m")
    assert refused == b"error: control character in name\n"


def test_a_datagram_socket_replies_to_each_sender(activate):
    """SOCK_DGRAM: the reply goes to the client's own (abstract) address; a sender with no
    address gets nothing back, and the refusal is logged with its uid."""
    daemon = activate(flags=("--datagram",))
    done = client(daemon.path, "datagram")
    assert (done.returncode, done.stdout) == (0, "Hello, Zoë\n"), done.stderr
    assert message_exchange(daemon.path, socket.SOCK_DGRAM, b"Ada") == b"Hello, Ada\n"
    assert message_exchange(daemon.path, socket.SOCK_DGRAM, b"") == b"error: empty name\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as unbound:
        unbound.sendto(b"Nobody", str(daemon.path))
    log = daemon.wait_for_log("no reply possible")
    assert f"uid {os.getuid()}" in log


def test_three_named_sockets_are_served_by_one_greeterd(activate, sock_dir):
    """A datagram, a seqpacket and a stream socket, named by --fdname like
    FileDescriptorName=, all handed to one greeterd process that serves each its own way."""
    datagram, seqpacket = sock_dir / "datagram.sock", sock_dir / "seqpacket.sock"
    outer = (
        "systemd-socket-activate", "--datagram", "-l", str(datagram),
        "systemd-socket-activate", "--seqpacket", "-l", str(seqpacket),
    )  # fmt: skip
    # Each outer systemd-socket-activate passes its socket on; the innermost names all three.
    # Only a datagram wakes the outermost one, and it stays pending to wake the next ones.
    daemon = activate(wrapper=outer, flags=("--fdname=datagram:seqpacket:stream",), wait=False)
    wait_for(lambda: reachable(datagram), what="the datagram socket")
    assert message_exchange(datagram, socket.SOCK_DGRAM, b"Dee") == b"Hello, Dee\n"
    assert message_exchange(seqpacket, socket.SOCK_SEQPACKET, b"Seq") == b"Hello, Seq\n"
    assert greet(daemon.path) == HELLO
    # Each activator exec()s the next in the same process, the innermost one greeterd: one
    # process, no children, holding the three sockets as fds 3, 4 and 5.
    pid = daemon.process.pid
    assert GREETERD in command_line(pid), command_line(pid)
    assert children(pid) == []
    assert all(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in (3, 4, 5))
    status = daemon.stop()
    assert status == 0, daemon.log


def test_an_unservable_socket_among_good_ones_stops_the_start(sock_dir):
    """One bad fd is enough to refuse to start: a named error and EX_CONFIG (78)."""
    good = sock_dir / "good.sock"
    port_owner = socket.socket()
    port_owner.bind(("127.0.0.1", 0))
    port = port_owner.getsockname()[1]
    port_owner.close()
    process = subprocess.Popen(
        [
            "systemd-socket-activate", "-l", str(good), "-l", f"127.0.0.1:{port}",
            "--fdname=stream:web", "greeterd",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PATH": f"{os.path.dirname(GREETER_CLIENT)}:{os.environ['PATH']}"},
    )  # fmt: skip
    wait_for(lambda: reachable(good), what="the stream socket")
    with socket.socket(socket.AF_UNIX) as poke:
        poke.connect(str(good))
        _, err = process.communicate(timeout=20)
    assert process.returncode == 78, err
    assert "fd 4 (web) is a AF_INET socket" in err
