"""Several greeterd processes sharing greeter.socket: greeter-worker@.service beside
greeter.service, enabled as an admin would (docs/operating.md, "Using more cores")."""

import re
import time
from collections.abc import Callable
from functools import partial

import pytest

from tests.container.conftest import Background, Container

WORKER = "greeter-worker@2.service"
MAIN = "greeter.service"
#: Load threads: each has at most one client in flight, so a worker killed mid-load can have
#: accepted at most this many clients it never answered.
THREADS = 16
SHORT_IDLE = "[Service]\nExecStart=\nExecStart=greeterd --exit-idle-time=0.5\n"
#: A worker that is handed greeter.socket and never touches it: what systemd itself does to
#: the shared socket at each exec, with nothing done after.
IDLE_SHARER = "[Service]\nType=simple\nExecStart=\nExecStart=sleep infinity\n"
#: O_NONBLOCK in the octal "flags:" of /proc/PID/fdinfo/FD.
O_NONBLOCK = 0o4000


@pytest.fixture
def group(container: Container) -> Container:
    """A container with greeter-worker@2 enabled and started as docs/operating.md says
    (`enable --now`, which starts greeter.service with it), and one client greeted."""
    container.exec("systemctl", "enable", "--now", WORKER)
    assert container.state(MAIN) == "active/running"
    assert container.state(WORKER) == "active/running"
    assert container.client("--name", "first").stdout == "Hello, first\n"
    return container


def greeted(container: Container, unit: str) -> int:
    """The count in the unit's STATUS= ("... 12 greeted, ..."); 0 before its first report."""
    found = re.search(r"(\d+) greeted", container.show(unit, "StatusText")["StatusText"])
    return int(found.group(1)) if found else 0


def outcome(result: dict[str, object]) -> tuple[int, int, list[str]]:
    """(greeted, failed, the first failures) of a load.py report."""
    greeted, failed, failures = result["greeted"], result["failed"], result["failures"]
    assert isinstance(greeted, int)
    assert isinstance(failed, int)
    assert isinstance(failures, list)
    return greeted, failed, failures


def test_an_enabled_worker_shares_the_greetings(group: Container) -> None:
    """2,000 greetings from 16 threads: every one is answered, and greeter.service and the
    worker each greeted some of them, as their own STATUS= lines count; the worker's STATUS=
    names it."""
    answered, failed, failures = outcome(group.load("greetings", "2000", str(THREADS)))
    assert (answered, failed) == (2000, 0), failures

    def counts() -> tuple[int, int]:
        return greeted(group, MAIN), greeted(group, WORKER)

    # STATUS= follows the counts within a second (lifecycle.STATUS_INTERVAL); +1: "first".
    shared = group.wait_for_property(
        MAIN, "StatusText", lambda _: sum(counts()) == 2001, timeout=10
    )
    main, worker = counts()
    print(f"2,000 greetings shared: greeter.service {main}, {WORKER} {worker}")
    assert main > 0, shared
    assert worker > 0, shared
    assert group.show(WORKER, "StatusText")["StatusText"].startswith("worker-2: ")


def listener_flags(container: Container) -> int:
    """The file status flags of greeter.service's fd 3, the listening socket it shares."""
    pid = container.main_pid(MAIN)
    fdinfo = container.exec("cat", f"/proc/{pid}/fdinfo/3", privileged=True).stdout
    return int(fdinfo.split("flags:")[1].split()[0], 8)


def test_another_process_started_on_the_socket_leaves_it_non_blocking(group: Container) -> None:
    """The listening socket's O_NONBLOCK belongs to the socket, shared by every process that
    holds it, and systemd sets or clears it at each exec it hands the socket to. A worker that
    starts (here one that only sleeps) leaves greeter.service's socket non-blocking, as
    NonBlocking=yes in both units asks: otherwise greeter.service's accept() blocks whenever
    another process wins the race for a client, and its watchdog kills it."""
    assert listener_flags(group) & O_NONBLOCK
    group.drop_in("greeter-worker@3.service", "sleep", IDLE_SHARER)
    group.exec("systemctl", "start", "greeter-worker@3.service")
    assert group.state("greeter-worker@3.service") == "active/running"
    assert listener_flags(group) & O_NONBLOCK


def under_load(group: Container, what: str, action: Callable[[], object]) -> tuple[int, list[str]]:
    """Do ``action`` 1.5 s into 4 s of 16 threads greeting; return how many clients failed and
    the first few failures (load.py's words), once someone was greeted and no watchdog fired."""
    load = Background(group, "steady", "4", str(THREADS))
    time.sleep(1.5)
    action()
    answered, failed, failures = outcome(load.result())
    print(f"{what} under load: {answered} greeted, {failed} failed")
    assert answered > 0
    assert "Watchdog timeout" not in group.journal()
    return failed, failures


def assert_only_cut_off(failed: int, failures: list[str]) -> None:
    """At most one client per load thread failed, each cut off mid-exchange (reset, or closed
    unanswered): the clients the killed process had accepted and not yet answered."""
    assert failed <= THREADS, failures
    for failure in failures:
        assert failure == "reply b''" or failure.startswith("ConnectionResetError"), failure


def test_a_worker_restarted_under_load_loses_no_client(group: Container) -> None:
    """`systemctl restart` of the worker while 16 threads greet: it drains what it accepted,
    greeter.service takes the rest meanwhile, and no client fails; nobody's watchdog fires."""
    main_pid = group.main_pid(MAIN)
    restart = partial(group.exec, "systemctl", "restart", WORKER)
    assert under_load(group, "worker restarted", restart) == (0, [])
    assert "worker-2: stopping (SIGTERM)" in group.journal("-t", "greeterd")
    assert group.main_pid(MAIN) == main_pid


def test_a_worker_killed_under_load_loses_only_its_own_clients(group: Container) -> None:
    """kill -9 of the worker while 16 threads greet: at most the clients it had accepted and
    not answered fail, everyone else is greeted by greeter.service, systemd restarts the
    worker, and no watchdog fires."""
    main_pid = group.main_pid(MAIN)
    assert_only_cut_off(
        *under_load(group, "worker killed", lambda: group.kill_and_wait_for_restart(WORKER))
    )
    assert group.show(WORKER, "NRestarts")["NRestarts"] == "1"
    group.wait_for_state(WORKER, "active/running")
    assert group.main_pid(MAIN) == main_pid
    assert group.show(MAIN, "NRestarts")["NRestarts"] == "0"


def test_a_crash_of_greeter_service_restarts_the_whole_group(group: Container) -> None:
    """kill -9 of greeter.service while 16 threads greet: systemd stops the worker (it drains)
    and starts both again; at most the clients greeter.service had accepted and not answered
    fail, and no watchdog fires."""
    worker_pid = group.main_pid(WORKER)
    assert_only_cut_off(
        *under_load(group, "greeter.service killed", lambda: group.kill_and_wait_for_restart(MAIN))
    )
    group.wait_for_state(WORKER, "active/running")
    assert group.main_pid(WORKER) not in (worker_pid, "0")
    assert "worker-2: stopping (SIGTERM)" in group.journal("-t", "greeterd")


def test_a_worker_greeterd_refuses_to_start_fails_once(group: Container) -> None:
    """An instance name --name does not take (a colon): greeterd exits 64 with a usage error,
    and systemd does not restart it every RestartSec (RestartPreventExitStatus=64)."""
    group.exec("systemctl", "start", "greeter-worker@a:b.service", check=False)
    group.wait_for_state("greeter-worker@a:b.service", "failed/failed")
    shown = group.show("greeter-worker@a:b.service", "ExecMainStatus", "NRestarts")
    assert shown == {"ExecMainStatus": "64", "NRestarts": "0"}
    assert "--name" in group.journal("-u", "greeter-worker@a:b.service")
    assert group.state(MAIN) == "active/running"


def test_the_group_stops_and_starts_as_one(group: Container) -> None:
    """Stopping greeter.service stops the worker; the next client starts both. greeter.service's
    idle exit stops the worker too (after its drain), and the next client starts both again."""
    group.exec("systemctl", "stop", MAIN)
    assert group.state(WORKER) == "inactive/dead"
    assert group.client("--name", "again").stdout == "Hello, again\n"
    group.wait_for_state(WORKER, "active/running")

    def worker_runs_ended() -> int:
        # By greeterd's identifier, not -u: a line that journald reads after its process
        # exited has no unit, and the "worker-2: " prefix says whose it is anyway.
        return group.journal("-t", "greeterd").count("worker-2: stopping (SIGTERM)")

    ended = worker_runs_ended()
    group.drop_in(MAIN, "short-idle", SHORT_IDLE)
    # The worker stops and starts with greeter.service, which exits on idle 0.5 s later.
    group.exec("systemctl", "restart", MAIN)
    group.wait_for_state(MAIN, "inactive/dead", timeout=10)
    group.wait_for_state(WORKER, "inactive/dead", timeout=10)
    assert worker_runs_ended() == ended + 2
    assert group.client("--name", "woken").stdout == "Hello, woken\n"
    group.wait_for_state(MAIN, "inactive/dead", timeout=10)
    group.wait_for_state(WORKER, "inactive/dead", timeout=10)
    assert worker_runs_ended() == ended + 3
    assert group.journal("-t", "greeterd").count(": stopping (idle for 0.5s)") == 2
    failed = group.exec("systemctl", "--failed", "--no-legend", "--plain").stdout
    assert "greeter" not in failed
