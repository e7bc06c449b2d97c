"""A user's own greeterd: `systemctl --user start greeter.socket`, found by greeter-client."""

import json
import re

import pytest

from tests.container.conftest import VARLINK_CALL, Container, User
from tests.support import wait_for

USER_UNITS = (
    "/etc/systemd/user/greeter.socket",
    "/etc/systemd/user/greeter-varlink.socket",
    "/etc/systemd/user/greeter.service",
)
#: The namespaces the user service gets: its own user namespace (PrivateUsers=yes), and within
#: it those of PrivateNetwork=, the file-system directives, PrivateIPC= and ProtectHostname=.
USER_NAMESPACES = ("user", "net", "mnt", "ipc", "uts")
#: What systemd logs when it runs a user service without a sandbox directive it could not set
#: up ("... namespace setup failed, ignoring", "proceeding without").
DOWNGRADE = re.compile(r"proceeding without|setup failed, ignoring|prohibited", re.IGNORECASE)
#: systemd-analyze --user security scores the user service 2.8: see docs/security.md.
USER_THRESHOLD = 28
SHORT_IDLE = "[Service]\nExecStart=\nExecStart=greeterd --exit-idle-time=0.5\n"


@pytest.fixture
def alice(container: Container) -> User:
    """alice, lingering, with her own greeter.socket started; the system's is stopped, so a
    greeting can only come from her instance."""
    container.exec("systemctl", "stop", "greeter.socket")
    user = User(container, "alice")
    user.linger()
    user.systemctl("start", "greeter.socket")
    return user


def test_a_users_client_is_greeted_by_her_own_instance(container, alice):
    """With the system's socket stopped, greeter-client in alice's session (no --socket) finds
    $XDG_RUNTIME_DIR/greeter.sock and is greeted; her manager's greeter.service ran it, as
    alice."""
    assert container.state("greeter.socket") == "inactive/dead"
    assert alice.show("greeter.service", "ActiveState") == "inactive"
    done = alice.run("greeter-client", "--name", "Alice")
    assert (done.returncode, done.stdout) == (0, "Hello, Alice\n"), done.stderr
    wait_for(
        lambda: alice.show("greeter.service", "StatusText").startswith("1 greeted"),
        what="STATUS= from alice's greeterd: her manager heard it (READY=1 came first)",
    )
    assert alice.show("greeter.service", "ActiveState") == "active"
    pid = alice.show("greeter.service", "MainPID")
    status = container.exec("cat", f"/proc/{pid}/status").stdout
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert set(uids) == {str(alice.uid)}


def test_the_users_socket_is_hers_and_in_her_runtime_directory(container, alice):
    """The socket is $XDG_RUNTIME_DIR/greeter.sock, owned by alice, in a directory only she
    may enter."""
    socket_path = f"{alice.runtime_dir}/greeter.sock"
    owner, kind = container.exec("stat", "-c", "%U|%F", socket_path).stdout.strip().split("|")
    assert (owner, kind) == ("alice", "socket")
    directory = container.exec("stat", "-c", "%U %a", alice.runtime_dir).stdout.split()
    assert directory == ["alice", "700"]
    assert alice.show("greeter.socket", "Listen") == f"{socket_path} (Stream)"


def test_another_user_cannot_connect_to_hers(container, alice):
    """bob, pointed at alice's socket, gets the permission-denied status: one line, no
    traceback."""
    bob = User(container, "bob")
    done = bob.run("greeter-client", "--socket", f"{alice.runtime_dir}/greeter.sock", "--name", "B")
    assert done.returncode == 77, done.stderr
    assert done.stderr.count("\n") == 1
    assert "permission denied" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_users_instance_exits_on_idle_and_comes_back(container, alice):
    """Idle exit and re-activation in the user manager: greeterd leaves after the idle time,
    the socket stays, and the next client starts it again."""
    container.exec("mkdir", "-p", "/etc/systemd/user/greeter.service.d")
    container.exec(
        "sh", "-c", "cat > /etc/systemd/user/greeter.service.d/short-idle.conf", input=SHORT_IDLE
    )
    alice.systemctl("daemon-reload")
    assert alice.run("greeter-client", "--name", "one").stdout == "Hello, one\n"
    first = alice.show("greeter.service", "MainPID")
    wait_for(
        lambda: alice.show("greeter.service", "ActiveState") == "inactive",
        timeout=10,
        interval=0.1,
        what="alice's greeterd to exit on idle",
    )
    assert alice.show("greeter.socket", "ActiveState") == "active"
    assert alice.run("greeter-client", "--name", "two").stdout == "Hello, two\n"
    assert alice.show("greeter.service", "MainPID") not in (first, "0")


def test_the_user_units_pass_systemd_analyze_verify(container):
    """systemd-analyze --user verify accepts the user's greeter.socket and greeter.service."""
    user = User(container, "carol")
    user.linger()
    done = user.run("systemd-analyze", "--user", "verify", "--man=no", *USER_UNITS)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_the_users_sandbox_is_in_force(container, alice):
    """alice's greeterd has its own user, network, mount, IPC and UTS namespaces (her manager
    shares the container's), no new privileges and a seccomp filter; systemd logged no
    sandbox it skipped."""
    assert alice.run("greeter-client", "--name", "Alice").returncode == 0
    pid = alice.show("greeter.service", "MainPID")
    manager = container.main_pid(f"user@{alice.uid}.service")
    for namespace in USER_NAMESPACES:
        own, managers = container.exec(
            "readlink",
            f"/proc/{pid}/ns/{namespace}",
            f"/proc/{manager}/ns/{namespace}",
            privileged=True,
        ).stdout.split()
        assert own != managers, f"greeterd shares its manager's {namespace} namespace"
    status = container.exec("cat", f"/proc/{pid}/status").stdout
    assert re.search(r"^NoNewPrivs:\s+1$", status, re.MULTILINE)
    assert re.search(r"^Seccomp:\s+2$", status, re.MULTILINE)
    skipped = [
        line for line in container.journal("-o", "cat").splitlines() if DOWNGRADE.search(line)
    ]
    assert skipped == []


def test_the_user_service_scores_2_8_or_better(container, alice):
    """systemd-analyze --user security rates alice's greeter.service 2.8 or lower."""
    done = alice.run(
        "systemd-analyze", "--user", "security", f"--threshold={USER_THRESHOLD}", "greeter.service"
    )
    score = re.search(r"Overall exposure level for greeter.service: (\d+\.\d)", done.stdout)
    assert score, done.stdout + done.stderr
    print(f"systemd-analyze --user security: {score.group(1)}")
    assert done.returncode == 0, done.stdout


def test_the_users_varlink_socket_is_served_by_her_instance(container, alice):
    """greeter-varlink.socket in alice's manager listens on $XDG_RUNTIME_DIR/io.greeterd.Greeter
    and her greeter.service answers a Greet call there."""
    alice.systemctl("start", "greeter-varlink.socket")
    address = f"{alice.runtime_dir}/io.greeterd.Greeter"
    done = alice.run(
        "python3", "-c", VARLINK_CALL, address, "io.greeterd.Greeter.Greet", '{"name": "Alice"}'
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"parameters": {"greeting": "Hello, Alice"}}
    assert alice.show("greeter.service", "ActiveState") == "active"
