"""greeterd's entry point (daemon.py): its command line and settings, its exit statuses, the
signals that stop it, and what it does before serving. Real processes on real sockets: the
installed greeterd, bound by itself or started by systemd-socket-activate."""

import resource
import signal
import subprocess
import sys
import time

import pytest

from greeterd import daemon, log, outlets, protocol, server
from tests.support import GREETERD, HELLO, MemoryOutlet, exchange, greet, require_tool, skip_or_fail


def test_greeterd_help_quotes_the_limits_it_enforces():
    """The limits in --help are the constants the code uses."""
    text = " ".join(daemon.COMMAND.help().split())
    assert f"{server.READ_TIMEOUT:g} s" in text
    assert f"{protocol.MAX_NAME_BYTES} bytes" in text
    assert f"at most {server.MAX_CONNECTIONS} clients" in text


@pytest.mark.parametrize(
    ("argv", "status"),
    [
        (["--version"], 0),
        (["--help"], 0),
        (["--bogus"], 64),
        (["--log-level", "loud"], 64),
        (["--name", "two words"], 64),
    ],
)
def test_command_line_exit_statuses(argv, status):
    """--help/--version exit 0; a bad command line exits 64 without a traceback."""
    done = subprocess.run(
        [GREETERD, *argv], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == status
    assert "Traceback" not in done.stderr


def test_help_that_cannot_be_written_exits_74():
    """--help with standard output closed: one line on standard error and EX_IOERR (74), the
    status --help lists for it, not 0 for a help nobody saw."""
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" --help >&-', GREETERD],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 74, done.stderr
    assert done.stderr == "greeterd: cannot write to standard output: it is closed\n"


@pytest.mark.parametrize(
    ("count", "problem"),
    [
        ("abc", "LISTEN_FDS='abc' is not a count of fds"),
        ("-1", "LISTEN_FDS='-1' is not a count of fds"),
        ("2", "fd 3 (unknown) is not a socket"),
    ],
    ids=["not a number", "negative", "fds not open"],
)
def test_a_malformed_listen_fds_is_refused_at_start(count, problem):
    """LISTEN_FDS that systemd would never write (or naming fds that are not open): a named
    error and EX_CONFIG, not a traceback. LISTEN_PID is the shell's pid, which exec keeps."""
    done = subprocess.run(
        ["sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS={count} exec "$0"', GREETERD],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 78, done.stderr
    assert f"cannot start: {problem}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_watchdog_usec_is_refused_before_binding(self_bound, sock_dir):
    """WATCHDOG_USEC that systemd would never write: EX_CONFIG (78) with the variable named,
    before greeterd binds --socket: a unit with a broken watchdog never serves."""
    daemon = self_bound(env={"PATH": "/usr/bin:/bin", "WATCHDOG_USEC": "soon"})
    _, err = daemon.process.communicate(timeout=15)
    assert daemon.process.returncode == 78, err
    assert "cannot start: WATCHDOG_USEC='soon' is not a positive number of microseconds" in err
    assert "Traceback" not in err
    assert not daemon.path.exists()


def test_a_vsock_notify_socket_without_systemd_python_is_refused_at_start(sock_dir):
    """NOTIFY_SOCKET=vsock:... is reached only through systemd-python, which the Debian package
    only Recommends: without it greeterd exits EX_UNAVAILABLE (69) with one line naming the
    package, before binding --socket, not with a traceback at READY=1 after it accepted."""
    path = sock_dir / "greeter.sock"
    without_systemd_python = (
        "import sys; sys.modules['systemd'] = None; "  # import systemd raises ImportError
        "from greeterd.daemon import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", without_systemd_python, "--socket", str(path)],
        env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": "vsock:2:9999"},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == daemon.EX_UNAVAILABLE == 69, done.stderr
    assert (
        "cannot start: NOTIFY_SOCKET=vsock:2:9999 is reached through systemd-python " in done.stderr
    )
    assert "(Debian: python3-systemd), which is not installed" in done.stderr
    assert "Traceback" not in done.stderr
    assert not path.exists()


def test_a_vsock_notify_socket_is_served_through_systemd_python():
    """With systemd-python installed a vsock NOTIFY_SOCKET is accepted at start: its notify()
    is what the Notifier will call (nothing is sent here: no vsock listener exists)."""
    from systemd import daemon as systemd_daemon  # noqa: PLC0415 (the reference)

    notifier = outlets.Notifier("vsock:2:9999")
    assert notifier._blocking is systemd_daemon.notify


def test_exit_idle_time_is_ignored_when_nobody_could_restart_greeterd(self_bound):
    """Without socket activation an idle exit would strand clients, so greeterd stays up."""
    daemon = self_bound("--exit-idle-time", "0.2").ready()
    time.sleep(0.8)
    assert daemon.process.poll() is None
    assert greet(daemon.path) == HELLO
    assert daemon.stop()[0] == 0


@pytest.mark.integration
def test_exit_idle_time_is_kept_when_socket_activated(activate):
    """Socket-activated, --exit-idle-time reaches the server: greeterd exits 0 on its own once
    idle that long, saying so, and systemd would start it again on the next client."""
    require_tool("systemd-socket-activate", "apt-get install systemd")
    activated = activate("--exit-idle-time", "0.3")
    assert greet(activated.path) == HELLO
    assert activated.process.wait(10) == 0, activated.log
    assert "stopping (idle for 0.3s)" in activated.log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_wakes_the_loop_and_greeterd_exits_zero(self_bound, signum):
    """SIGTERM (systemctl stop) and SIGINT (Ctrl-C) wake the idle loop through the signal
    wake-up fd: greeterd logs which one and exits 0, with no KeyboardInterrupt traceback."""
    daemon = self_bound().ready()
    assert greet(daemon.path) == HELLO
    status, err = daemon.stop(signum)
    assert status == 0, err
    assert f"stopping ({signal.Signals(signum).name})" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("level", "logged"), [("notice", True), ("warning", False)], ids=["notice", "warning"]
)
def test_log_level_decides_whether_refusals_are_logged(self_bound, level, logged):
    """--log-level reaches the log: a refused request is a notice line, written at
    --log-level notice and left out at --log-level warning."""
    daemon = self_bound("--log-level", level).ready()
    assert exchange(daemon.path, b"\n") == b"error: empty name\n"
    status, err = daemon.stop()
    assert status == 0, err
    assert ("refused request" in err) is logged, err


def test_the_soft_fd_limit_is_raised_to_the_hard_one(open_files):
    """_raise_fd_limit() lifts the soft RLIMIT_NOFILE to the hard limit and logs nothing: the
    room MAX_CONNECTIONS needs under systemd's soft 1024 (the limits are put back after)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 512:
        skip_or_fail(f"the hard limit ({hard}) leaves no soft limit below it to raise from")
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    outlet = MemoryOutlet()
    daemon._raise_fd_limit(log.Log(log.DEBUG, outlet))
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    assert outlet.sent == []


def test_root_and_greeterds_own_uid_are_exempt_from_the_share():
    """share_exempt_uids(): root always; greeterd's own uid too (a user's own instance, whose
    clients are all its owner); no other uid."""
    assert daemon.share_exempt_uids(0) == (0,)
    assert daemon.share_exempt_uids(1000) == (0, 1000)
