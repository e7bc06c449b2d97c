"""greeterd under systemd as PID 1: activation, ownership of the socket, restarts, crashes."""

import time

from tests.container.conftest import Background, Container
from tests.support import wait_for

SOCKET = "/run/greeter.sock"


def listening_sockets(container: Container, table: str = "/proc/net/unix") -> list[str]:
    """'inode path' of each listening AF_UNIX socket in a network namespace's table."""
    found = []
    for line in container.exec("cat", table).stdout.splitlines()[1:]:
        fields = line.split()
        # Num RefCount Protocol Flags Type St Inode [Path]; St 01 = listening
        if fields[5] == "01":
            found.append(" ".join(fields[6:]))
    return found


def test_boot_reaches_running_with_no_failed_greeter_unit(container):
    """systemd boots; greeter.socket is enabled and listening; it, greeter.service and a
    worker (greeter-worker@.service, enabled for nobody) pass verify."""
    assert container.system_state() in ("running", "degraded")
    failed = container.exec("systemctl", "--failed", "--no-legend", "--plain").stdout
    assert "greeter" not in failed
    assert container.state("greeter.socket") == "active/listening"
    # --man=no: the minimal image has no man(1) to look up Documentation= pages with.
    verify = container.exec(
        "systemd-analyze",
        "verify",
        "--man=no",
        "greeter.socket",
        "greeter.service",
        "greeter-worker@2.service",
        check=False,
    )
    assert (
        container.exec("ls", "/etc/systemd/system/greeter.service.wants", check=False).stdout == ""
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == ""


def test_the_first_client_activates_the_service(container):
    """Before: socket listening with mode 0666, service inactive. After: greeted, notify-ready."""
    container.exec("systemctl", "start", "greeter.socket")
    assert container.state("greeter.service") == "inactive/dead"
    assert container.exec("stat", "-c", "%a %F", SOCKET).stdout.strip() == "666 socket"
    done = container.client("--name", "Zoë")
    assert (done.returncode, done.stdout) == (0, "Hello, Zoë\n"), done.stderr
    service = container.show("greeter.service", "ActiveState", "SubState", "Type")
    assert service["Type"] == "notify"
    assert (service["ActiveState"], service["SubState"]) == ("active", "running")
    # STATUS= reaches systemd by its own datagram, which may trail the reply by a moment.
    container.wait_for_status("greeter.service", "greeted")


def test_any_user_from_a_login_shell_is_greeted(container):
    """A non-root user, through a login shell, reaches the socket and is greeted."""
    container.exec("useradd", "--create-home", "--shell", "/bin/bash", "alice")
    done = container.exec("runuser", "--login", "alice", "--command", "greeter-client --name Alice")
    assert done.stdout == "Hello, Alice\n"
    piped = container.exec("runuser", "--login", "alice", "--command", "echo Ada | greeter-client")
    assert piped.stdout == "Hello, Ada\n"


def test_systemd_binds_and_listens_greeterd_only_accepts(container):
    """The socket greeterd serves is the one systemd made before greeterd existed: after
    activation the same single listening socket (same inode) is there, and greeterd's own
    network namespace (PrivateNetwork=yes) holds no listening socket, so greeterd made no
    bind() or listen() of its own. (The host test traces the syscalls themselves.)"""
    before = [s for s in listening_sockets(container) if s.endswith(SOCKET)]
    assert len(before) == 1, f"expected systemd's one listening socket, saw {before}"
    assert container.state("greeter.service") == "inactive/dead"
    assert container.client("--name", "Zoë").returncode == 0
    pid = container.main_pid()
    assert pid != "0"
    assert [s for s in listening_sockets(container) if s.endswith(SOCKET)] == before
    assert listening_sockets(container, f"/proc/{pid}/net/unix") == []
    assert "3" in container.exec("ls", f"/proc/{pid}/fd").stdout.split()  # the inherited fd


def test_restarts_under_load_lose_no_client(container):
    """Clients connect continuously from 8 threads while the service restarts 4 times:
    every one of them is greeted (queued connections wait for the next instance)."""
    container.client("--name", "warm-up", check=True)
    load = Background(container, "steady", "12", "8")
    time.sleep(1)
    pids = set()
    for _ in range(4):
        container.exec("systemctl", "restart", "greeter.service")
        pids.add(container.main_pid())
        time.sleep(2)
    result = load.result()
    print(f"restarts under load: {result['greeted']} greeted, {result['failed']} failed")
    assert len(pids) == 4, f"each restart should start a new process, saw {pids}"
    assert result["failed"] == 0, result["failures"]
    assert int(result["greeted"]) >= 2000, result  # type: ignore[call-overload]


def test_a_killed_daemon_is_restarted_and_only_its_accepted_clients_fail(container):
    """kill -9 under load: systemd restarts greeterd; at most the connections the dead
    process held (one per client thread) fail, the rest are greeted."""
    container.client("--name", "warm-up", check=True)
    threads = 8
    kills = 3
    load = Background(container, "steady", "10", str(threads))
    time.sleep(1)
    for _ in range(kills):
        container.kill_and_wait_for_restart()
        time.sleep(2)
    result = load.result()
    print(f"kill -9 x{kills} under load: {result['greeted']} greeted, {result['failed']} failed")
    assert int(result["failed"]) <= threads * kills, result  # type: ignore[call-overload]
    assert int(result["greeted"]) >= 1000, result  # type: ignore[call-overload]
    restarts = container.show("greeter.service", "NRestarts")["NRestarts"]
    assert int(restarts) == kills
    assert container.client("--name", "after").stdout == "Hello, after\n"


def test_stopping_the_socket_is_reported_clearly_and_start_restores_it(container):
    """After `systemctl stop greeter.socket` the client says how to start it; start greets."""
    assert container.client("--name", "before").returncode == 0
    container.exec("systemctl", "stop", "greeter.socket")
    assert container.state("greeter.service") == "inactive/dead"
    stopped = container.client("--name", "during")
    assert stopped.returncode == 68, stopped.stderr
    assert "systemctl start greeter.socket" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    container.exec("systemctl", "start", "greeter.socket")
    assert container.client("--name", "after").stdout == "Hello, after\n"


def test_clients_queued_while_the_service_starts_are_all_greeted(container):
    """500 clients connect at once with greeterd not running: all wait in the backlog and
    are greeted once systemd has started it."""
    assert container.state("greeter.service") == "inactive/dead"
    result = container.load("burst", "500")
    assert (result["greeted"], result["failed"]) == (500, 0), result["failures"]


def test_a_refused_request_is_journaled_with_reason_and_peer_uid(container):
    """The journal line for a refused name carries the reason and the sender's uid as fields."""
    container.exec("useradd", "--uid", "1234", "bob")
    done = container.exec(
        "python3",
        "-c",
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/greeter.sock');"
        "s.sendall(b'\\x1b[31mbob\\n'); print(s.recv(100))",
        user="bob",
    )
    assert "control character in name" in done.stdout
    refused = wait_for(
        lambda: [e for e in container.journal_entries("greeter.service") if "GREETER_REASON" in e],
        interval=0.2,
        what="the refusal in the journal",
    )
    entry = refused[0]
    assert entry["GREETER_REASON"] == "control character in name"
    assert entry["GREETER_PEER_UID"] == "1234"
    assert "uid 1234" in entry["MESSAGE"]
    assert "\x1b" not in entry["MESSAGE"]
    assert entry["SYSLOG_IDENTIFIER"] == "greeterd"
