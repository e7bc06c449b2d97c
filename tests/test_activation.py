"""Where sockets come from: inherited fds, our own bind, and systemd's environment."""

import os
import re
import socket
import stat
from pathlib import Path

import pytest

from greeterd import activation
from greeterd.activation import ActivationError, BoundListener


def listening_socket(path: Path, kind: int = socket.SOCK_STREAM) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.bind(str(path))
    sock.listen(16)
    return sock


def test_a_listening_unix_stream_socket_is_adopted_as_is(sock_dir):
    """The same fd comes back, non-blocking, still listening, with its backlog untouched."""
    with listening_socket(sock_dir / "s") as original:
        endpoint = activation.adopt(original.fileno(), "stream")
        assert endpoint.kind == activation.LISTENER
        assert (endpoint.name, endpoint.message_mode) == ("stream", False)
        assert endpoint.sock.fileno() == original.fileno()
        assert endpoint.sock.getblocking() is False
        assert endpoint.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert endpoint.describe() == f"stream {sock_dir / 's'} (stream)"
        endpoint.sock.detach()


def test_a_listening_seqpacket_socket_is_a_message_listener(sock_dir):
    """SOCK_SEQPACKET listeners are accepted on like streams, but read message by message."""
    with listening_socket(sock_dir / "q", socket.SOCK_SEQPACKET) as original:
        endpoint = activation.adopt(original.fileno(), "seqpacket")
        assert (endpoint.kind, endpoint.message_mode) == (activation.LISTENER, True)
        endpoint.sock.detach()


def test_a_bound_datagram_socket_is_served_with_sender_credentials(sock_dir):
    """A datagram socket is adopted as such, with SO_PASSCRED on for the log's uid and pid."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as original:
        original.bind(str(sock_dir / "d"))
        endpoint = activation.adopt(original.fileno(), "datagram")
        assert (endpoint.kind, endpoint.message_mode) == (activation.DATAGRAM, True)
        assert endpoint.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED) == 1
        endpoint.sock.detach()


def test_a_listener_named_varlink_speaks_varlink(sock_dir):
    """FileDescriptorName=varlink on a listening stream socket: served as Varlink."""
    with listening_socket(sock_dir / "v") as original:
        endpoint = activation.adopt(original.fileno(), activation.VARLINK_NAME)
        assert endpoint.kind == activation.VARLINK
        endpoint.sock.detach()


def test_a_connected_socket_is_one_client_to_serve():
    """Accept=yes passes a connected socket (named "connection"): served once."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        endpoint = activation.adopt(ours.fileno(), activation.CONNECTION_NAME)
        assert endpoint.kind == activation.CONNECTION
        assert endpoint.describe() == "one stream connection (connection)"
        endpoint.sock.detach()


@pytest.mark.parametrize(
    ("make", "name", "problem"),
    [
        (lambda d: socket.socket(socket.AF_INET, socket.SOCK_STREAM), "web", "AF_INET socket"),
        (lambda d: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), "d", "bound to no address"),
        (lambda d: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM), "s", "neither listening nor"),
        (lambda d: listening_socket(d / "l"), "connection", "named 'connection' (Accept=yes) but"),
        (
            lambda d: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
            "varlink",
            "named 'varlink' but not a listening stream",
        ),
        (
            lambda d: listening_socket(d / "q", socket.SOCK_SEQPACKET),
            "varlink",
            "named 'varlink' but not a listening stream",
        ),
    ],
    ids=[
        "inet",
        "unbound datagram",
        "neither listening nor connected",
        "listening connection",
        "varlink not listening",
        "varlink seqpacket",
    ],
)
def test_sockets_greeterd_cannot_serve_are_refused_by_name(sock_dir, make, name, problem):
    """The error names the fd, its name and what is wrong with it; the fd is left open."""
    with make(sock_dir) as sock:
        with pytest.raises(ActivationError, match=re.escape(problem)) as refused:
            activation.adopt(sock.fileno(), name)
        assert f"fd {sock.fileno()} ({name})" in str(refused.value)
        os.fstat(sock.fileno())  # still open


def test_an_fd_that_is_not_a_socket_is_refused(sock_dir):
    """A pipe passed as a socket is a configuration error, not a crash."""
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(ActivationError, match="not a socket"):
            activation.adopt(read_end, "pipe")
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_bound_listener_is_world_connectable_and_listening(sock_dir):
    """Our own socket gets the unit's mode (0666) and backlog, and is removed on close."""
    path = sock_dir / "greeter.sock"
    bound = BoundListener(str(path))
    try:
        assert stat.S_IMODE(path.stat().st_mode) == activation.SOCKET_MODE
        assert bound.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        bound.close()
    assert not path.exists()


@pytest.mark.parametrize(
    ("path", "problem"),
    [("", "not a path in the file system"), ("/tmp/" + "x" * 200, "path too long")],
    ids=["empty", "too long for sun_path"],
)
def test_a_path_greeterd_cannot_bind_is_a_named_error(path, problem):
    """--socket '' would autobind an abstract address, and a long path does not fit."""
    with pytest.raises(ActivationError, match=problem):
        activation.BoundListener(path)


def test_a_stale_socket_is_replaced(sock_dir):
    """A socket file nobody listens on (a crashed server's) is removed and bound again."""
    path = sock_dir / "greeter.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as crashed:
        crashed.bind(str(path))
    with socket.socket(socket.AF_UNIX) as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(str(path))
    bound = BoundListener(str(path))
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))  # now someone listens: ours
    finally:
        bound.close()


def test_a_socket_someone_listens_on_is_left_alone(sock_dir):
    """Another live server's socket is never unlinked."""
    path = sock_dir / "greeter.sock"
    with listening_socket(path):
        inode = path.stat().st_ino
        with pytest.raises(ActivationError, match="in use"):
            BoundListener(str(path))
        assert path.stat().st_ino == inode


def test_a_path_that_is_not_a_socket_is_never_removed(sock_dir):
    """A regular file in the way is reported and kept."""
    path = sock_dir / "greeter.sock"
    path.write_text("precious")
    with pytest.raises(ActivationError, match="not a socket"):
        BoundListener(str(path))
    assert path.read_text() == "precious"


def test_close_leaves_a_path_that_is_no_longer_ours(sock_dir):
    """If someone replaced our socket file, close() does not unlink theirs."""
    path = sock_dir / "greeter.sock"
    bound = BoundListener(str(path))
    path.unlink()
    path.write_text("someone else's")
    bound.close()
    assert path.read_text() == "someone else's"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "4242"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),
    ],
    ids=["unset", "interval", "our pid", "another pid"],
)
def test_watchdog_interval_is_half_of_watchdog_usec(environ, expected):
    """Pings at half the timeout, and only when the watchdog is meant for this process."""
    assert activation.watchdog_interval(environ, pid=4242) == expected


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e6", "²", "٣٠٠٠٠٠٠"])
def test_a_malformed_watchdog_usec_is_an_error(value):
    """systemd never sends these; if something does, say so instead of guessing."""
    with pytest.raises(ActivationError, match="WATCHDOG_USEC"):
        activation.watchdog_interval({"WATCHDOG_USEC": value}, pid=1)


def test_journal_stream_must_name_our_stderr(tmp_path):
    """JOURNAL_STREAM counts only if its device:inode is the fd we would write to."""
    with (tmp_path / "stderr").open("w") as stream:
        status = os.fstat(stream.fileno())
        ours = f"{status.st_dev}:{status.st_ino}"
        assert activation.stderr_is_journal({"JOURNAL_STREAM": ours}, stream.fileno())
        assert not activation.stderr_is_journal({"JOURNAL_STREAM": "1:2"}, stream.fileno())
        assert not activation.stderr_is_journal({"JOURNAL_STREAM": "junk"}, stream.fileno())
        assert not activation.stderr_is_journal({"JOURNAL_STREAM": "²:1"}, stream.fileno())
        assert not activation.stderr_is_journal({}, stream.fileno())
