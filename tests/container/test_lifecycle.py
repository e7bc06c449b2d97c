"""Lifecycle under systemd: idle exit and re-activation, the watchdog, crash loops."""

import threading
import time

from tests.container.conftest import Container
from tests.support import wait_for

SHORT_IDLE = "[Service]\nExecStart=\nExecStart=greeterd --exit-idle-time=0.5\n"


class StateRecorder:
    """Samples a unit's ActiveState in the background; ``states`` is every value seen."""

    def __init__(self, container: Container, unit: str) -> None:
        self.states: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(container, unit))
        self._thread.start()

    def _run(self, container: Container, unit: str) -> None:
        while not self._stop.is_set():
            self.states.add(container.show(unit, "ActiveState")["ActiveState"])
            time.sleep(0.1)

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return self.states


def test_clients_across_the_idle_exit_boundary_are_all_greeted(container):
    """With a 0.5 s idle exit and clients arriving 0.45-0.65 s apart, greeterd exits and is
    started again many times; every client is greeted and the socket never leaves active."""
    container.drop_in("greeter.service", "short-idle", SHORT_IDLE)
    socket_states = StateRecorder(container, "greeter.socket")
    try:
        result = container.load("idle-boundary", "40", "0.5")
    finally:
        seen = socket_states.stop()
    assert (result["greeted"], result["failed"]) == (40, 0), result["failures"]
    assert seen == {"active"}
    idle_exits = container.journal("-u", "greeter.service").count("stopping (idle for 0.5s)")
    print(f"idle boundary: 40 greeted across {idle_exits} idle exits")
    assert idle_exits >= 5, f"only {idle_exits} idle exits: the boundary was not exercised"
    container.wait_for_state("greeter.service", "inactive/dead", timeout=5)
    assert container.client("--name", "again").stdout == "Hello, again\n"
    assert container.state("greeter.service") == "active/running"


def test_a_stuck_daemon_is_killed_by_the_watchdog_and_restarted(container):
    """SIGSTOP freezes greeterd's loop: systemd's watchdog (WatchdogSec=5s) kills it and
    starts a new one; the client that waited meanwhile is greeted."""
    assert container.client("--name", "before").returncode == 0
    assert container.show("greeter.service", "WatchdogUSec")["WatchdogUSec"] == "5s"
    frozen = container.main_pid()
    container.exec("sh", "-c", f"kill -STOP {frozen}")
    stopped_at = time.monotonic()
    waiting = container.client("--name", "waited", "--timeout", "20")
    assert waiting.stdout == "Hello, waited\n", waiting.stderr
    assert container.main_pid() != frozen
    recovered = time.monotonic() - stopped_at
    print(f"watchdog: a new greeterd greeted the waiting client {recovered:.1f} s after SIGSTOP")
    assert recovered < 10
    assert "Watchdog timeout" in container.journal("-u", "greeter.service")


def test_repeated_crashes_never_fail_the_socket(container):
    """Eight kill -9 in a row, faster than systemd's default start limit (5 in 10 s) allows:
    greeterd comes back every time and greeter.socket stays active."""
    assert container.client("--name", "before").returncode == 0
    for _ in range(8):
        container.kill_and_wait_for_restart()
    assert container.show("greeter.service", "NRestarts")["NRestarts"] == "8"
    assert container.state("greeter.socket") == "active/running"
    assert container.client("--name", "after").stdout == "Hello, after\n"


def test_a_persistent_crash_loop_keeps_the_socket_and_heals_when_fixed(container):
    """A broken start (greeterd exits 64 at once) is retried every RestartSec without end:
    after 6 s the socket is still active with a client waiting in its backlog; fixing the
    unit is enough for that client to be greeted, without resetting anything."""
    container.drop_in(
        "greeter.service", "broken", "[Service]\nExecStart=\nExecStart=greeterd --bogus\n"
    )
    result: dict[str, str] = {}

    def wait_for_greeting() -> None:
        done = container.client("--name", "patient", "--timeout", "30")
        result["out"], result["err"] = done.stdout, done.stderr

    client = threading.Thread(target=wait_for_greeting)
    client.start()
    time.sleep(6)
    restarts = int(container.show("greeter.service", "NRestarts")["NRestarts"])
    print(f"crash loop: {restarts} restarts in 6 s, greeter.socket still active")
    assert restarts > 5, f"{restarts} restarts: systemd's default limit would have stopped at 5"
    assert container.show("greeter.socket", "ActiveState")["ActiveState"] == "active"
    container.exec("rm", "/etc/systemd/system/greeter.service.d/broken.conf")
    container.exec("systemctl", "daemon-reload")
    wait_for(lambda: "out" in result, 40, 0.1, "the client waiting in the backlog to finish")
    client.join()
    assert result.get("out") == "Hello, patient\n", result
