"""Where sockets come from: inherited fds, our own bind, and systemd's environment."""

import json
import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from greeterd import activation
from greeterd.activation import ActivationError, BoundListener


def listening_socket(path: Path, kind: int = socket.SOCK_STREAM) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.bind(str(path))
    sock.listen(16)
    return sock


#: Run with a case of LISTEN_* variables as argv[1] (LISTEN_PID "self" becomes this process's
#: pid) and fds 3 to 6 open and inheritable. With argv[2] "theirs" prints what libsystemd's
#: sd_listen_fds_with_names(3) reads, through systemd-python; with "ours", what greeterd
#: adopts, then the LISTEN_* names left in greeterd's mapping, in os.environ and in a child's
#: environment, and which of fds 3 to 6 a child would inherit. {fd: name} or "refused".
READ_LISTEN_FDS = """
import json, os, socket, subprocess, sys
pairs = [socket.socketpair() for _ in range(2)]
fds = sorted(s.fileno() for pair in pairs for s in pair)
assert fds == [3, 4, 5, 6]
for fd in fds:
    os.set_inheritable(fd, True)
case = json.loads(sys.argv[1])
if case.get("LISTEN_PID") == "self":
    case["LISTEN_PID"] = str(os.getpid())
os.environ.update(case)
if sys.argv[2] == "theirs":
    from systemd import daemon
    try:
        theirs = {str(fd): name for fd, name in daemon.listen_fds_with_names(True).items()}
    except OSError:
        theirs = "refused"
    print(json.dumps(theirs))
    sys.exit()
from greeterd import activation
environ = dict(os.environ)
try:
    ours = {str(e.sock.detach()): e.name for e in activation.inherited_endpoints(environ)}
except activation.ActivationError:
    ours = "refused"
child = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout.split()
left = [[n for n in names if n.startswith("LISTEN_")] for names in (environ, os.environ, child)]
print(json.dumps(ours))
print(json.dumps(left))
print(json.dumps([fd for fd in fds if ours != "refused" and os.get_inheritable(fd)]))
"""

LISTEN_CASES = {
    "not activated": {},
    "two fds": {"LISTEN_PID": "self", "LISTEN_FDS": "2"},
    "two named fds": {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"},
    "an empty name": {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:"},
    "four fds": {"LISTEN_PID": "self", "LISTEN_FDS": "4", "LISTEN_FDNAMES": "w:x:y:z"},
    "meant for another process": {"LISTEN_PID": "1", "LISTEN_FDS": "2"},
    "no count": {"LISTEN_PID": "self"},
    "no pid": {"LISTEN_FDS": "2"},
    "a pid that is not a number": {"LISTEN_PID": "abc", "LISTEN_FDS": "2"},
    "an empty pid": {"LISTEN_PID": "", "LISTEN_FDS": "2"},
    "a pid past pid_t": {"LISTEN_PID": "99999999999999999999", "LISTEN_FDS": "2"},
    "a count that is not a number": {"LISTEN_PID": "self", "LISTEN_FDS": "abc"},
    "an empty count": {"LISTEN_PID": "self", "LISTEN_FDS": ""},
    "a negative count": {"LISTEN_PID": "self", "LISTEN_FDS": "-1"},
    "a count of zero": {"LISTEN_PID": "self", "LISTEN_FDS": "0"},
    "an fd that is not open": {"LISTEN_PID": "self", "LISTEN_FDS": "9"},
    "too few names": {"LISTEN_PID": "self", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a"},
    "too many names": {"LISTEN_PID": "self", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"},
    "empty names": {"LISTEN_PID": "self", "LISTEN_FDS": "1", "LISTEN_FDNAMES": ""},
}


@pytest.mark.parametrize("case", LISTEN_CASES.values(), ids=LISTEN_CASES.keys())
def test_listen_fds_are_read_as_libsystemd_reads_them(case):
    """greeterd reads LISTEN_* itself (systemd-python would load libsystemd at every start):
    on the same environment and fds it finds what sd_listen_fds_with_names(3) finds, refuses
    what it refuses, and leaves no LISTEN_* variable behind for a child."""
    theirs, ours, left, inherited = (
        json.loads(line) for which in ("theirs", "ours") for line in read_listen_fds(case, which)
    )
    assert ours == theirs
    assert left == [[], [], []], "LISTEN_* left in greeterd's mapping, os.environ, a child"
    if ours != "refused":  # passed fds are kept from children; the others are left alone
        assert inherited == [fd for fd in [3, 4, 5, 6] if str(fd) not in ours]


def read_listen_fds(case: dict[str, str], which: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", READ_LISTEN_FDS, json.dumps(case), which],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


@pytest.mark.parametrize("value", [" 7", "+7", "0x7", "07", "7 ", "\uff17"])
@pytest.mark.parametrize("variable", ["LISTEN_PID", "LISTEN_FDS"])
def test_listen_fds_takes_numbers_only_as_systemd_writes_them(variable, value):
    """systemd writes plain ASCII decimal. Spaces, a sign, a base or a leading zero, which
    libsystemd's parser may read, and which it would read as octal, are refused rather than
    guessed at (the one place greeterd's reading differs from libsystemd's)."""
    environ = {"LISTEN_PID": "7", "LISTEN_FDS": "7", variable: value}
    with pytest.raises(ActivationError, match=variable):
        activation.listen_fds(environ, 7)


def test_listen_fds_refuses_a_count_no_process_could_hold():
    """Past fs.nr_open's ceiling no fd could be open: refused before any name is built."""
    with pytest.raises(ActivationError, match="LISTEN_FDS"):
        activation.listen_fds({"LISTEN_PID": "7", "LISTEN_FDS": "99999999999999999999"}, 7)


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
