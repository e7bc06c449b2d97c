"""greeterd without systemd: it binds --socket itself, and cleans up only what it bound."""

import os
import socket
import stat

from greeterd import activation
from tests.support import HELLO, greet, try_greet, wait_for


def test_without_systemd_greeterd_binds_its_own_socket_and_removes_it_on_exit(self_bound):
    """Not activated: bind, listen with mode 0666, greet; SIGTERM removes the path, exit 0."""
    daemon = self_bound().ready()
    assert stat.S_IMODE(daemon.path.stat().st_mode) == activation.SOCKET_MODE
    assert greet(daemon.path) == HELLO
    status, err = daemon.stop()
    assert status == 0, err
    assert not daemon.path.exists()


def test_a_stale_socket_left_by_a_crash_is_replaced(self_bound, sock_dir):
    """A socket file nobody listens on does not stop a restart."""
    path = sock_dir / "greeter.sock"
    with socket.socket(socket.AF_UNIX) as crashed:
        crashed.bind(str(path))
    daemon = self_bound(path=path).ready()
    wait_for(lambda: try_greet(path) == HELLO, what="the new daemon on the old path")
    assert daemon.stop()[0] == 0


def test_a_live_socket_is_not_stolen(self_bound, sock_dir):
    """Another server listening on the path: exit 73 with a clear message; its socket stays."""
    path = sock_dir / "greeter.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen(1)
        daemon = self_bound(path=path)
        _, err = daemon.process.communicate(timeout=15)
        assert daemon.process.returncode == 73
        assert "in use: another server listens on it" in err
        assert path.exists()


def test_a_file_in_the_way_is_never_removed(self_bound, sock_dir):
    """A regular file at --socket: exit 73, and the file is untouched."""
    path = sock_dir / "greeter.sock"
    path.write_text("keep me")
    daemon = self_bound(path=path)
    _, err = daemon.process.communicate(timeout=15)
    assert daemon.process.returncode == 73
    assert "exists and is not a socket" in err
    assert path.read_text() == "keep me"


def test_listen_fds_meant_for_another_process_are_ignored(self_bound):
    """LISTEN_PID of another process: those fds are not ours, so greeterd binds its own."""
    env = {**os.environ, "LISTEN_FDS": "1", "LISTEN_PID": "1"}
    daemon = self_bound(env=env).ready()
    assert greet(daemon.path) == HELLO
    assert daemon.stop()[0] == 0
