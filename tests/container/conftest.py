"""Container tests: systemd as PID 1 in podman, booted from the project's Containerfile.

Each test gets a fresh container with a unique name, removed even when the test fails; a
failing test prints the journal and the greeter units' status. Outside CI the tests skip when
podman is missing; in CI (CI=true) that is a failure, since a skip would hide a broken
systemd path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, require_tool, wait_for

CONTAINER_DIR = ROOT / "packaging" / "container"
LOAD_SCRIPT = (Path(__file__).parent / "load.py").read_text()
#: The Debian suites every container test runs on: bookworm (Debian 12, systemd 252), trixie
#: (Debian 13, systemd 257) and forky (Debian testing, systemd 262). GREETER_SUITES="trixie"
#: narrows a run to one.
SUITES = tuple(os.environ.get("GREETER_SUITES", "bookworm trixie forky").split())
#: What packaging/container/boot reported for each suite's containers: "systemd 262 is PID 1
#: (cgroup v2)", for the summary line.
BOOTED: dict[str, str] = {}

# Podman settings that work on every host we know (runc, modest ulimits): see the file.
os.environ.setdefault("CONTAINERS_CONF", str(CONTAINER_DIR / "containers.conf"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.container)
            # The first test of each suite makes its base image (about 90 s with debootstrap)
            # and the image in its fixtures, inside pytest-timeout's bound.
            item.add_marker(pytest.mark.timeout(900))


FAILED = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per suite: how many container tests ran on it, and how long they took."""
    seconds = dict.fromkeys(SUITES, 0.0)
    outcomes: dict[str, dict[str, int]] = {suite: {} for suite in SUITES}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if not isinstance(report, pytest.TestReport) or "[" not in report.nodeid:
                continue
            ids = report.nodeid.rpartition("[")[2].rstrip("]").split("-")
            for suite in seconds.keys() & ids:
                seconds[suite] += report.duration
                if report.when == "call" or report.outcome != "passed":
                    counts = outcomes[suite]
                    counts[report.outcome] = counts.get(report.outcome, 0) + 1
    for suite, spent in seconds.items():
        if outcomes[suite]:
            tally = ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes[suite].items()))
            booted = f" ({BOOTED[suite]})" if suite in BOOTED else ""
            terminalreporter.write_line(
                f"container tests on {suite}{booted}: {tally} in {spent:.0f} s"
            )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test body failed, so the fixture can print diagnostics."""
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


#: One Varlink call over a raw socket with Debian's python3 only (bookworm has no varlinkctl):
#: python3 -c VARLINK_CALL ADDRESS METHOD PARAMETERS-JSON prints the reply.
VARLINK_CALL = """
import json, socket, sys
with socket.socket(socket.AF_UNIX) as s:
    s.settimeout(10)
    s.connect(sys.argv[1])
    message = {"method": sys.argv[2], "parameters": json.loads(sys.argv[3])}
    s.sendall(json.dumps(message).encode() + b"\\0")
    reply = b""
    while not reply.endswith(b"\\0"):
        reply += s.recv(65536)
print(reply[:-1].decode())
"""


class Container:
    """A container of ``image`` with systemd as PID 1, once boot() has started it."""

    def __init__(self, image: str) -> None:
        self.name = f"greeterd-test-{uuid.uuid4().hex[:10]}"
        self.image = image

    def boot(self, timeout: int = 60) -> str:
        """Start the container and wait for systemd to finish booting, as packaging/demo does:
        with packaging/container/boot, on a pure cgroup v2 hierarchy. Return the system state
        (running or degraded); note systemd's version and the cgroup mode for the summary."""
        done = subprocess.run(
            [str(CONTAINER_DIR / "boot"), "--timeout", str(timeout), self.image, self.name],
            capture_output=True,
            text=True,
            timeout=timeout + 300,  # podman run itself is not bounded by the script
            check=False,
        )
        assert done.returncode == 0, f"packaging/container/boot failed:\n{done.stderr}"
        state, version, cgroups = done.stdout.splitlines()
        BOOTED[self.image.rpartition(":")[2]] = f"systemd {version} is PID 1, {cgroups}"
        return state

    def exec(
        self,
        *command: str,
        user: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
        privileged: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the container; ``privileged`` gives it every capability, as
        reading another user's /proc/PID/ns/* needs (CAP_SYS_PTRACE)."""
        options = ["--user", user] if user else []
        if privileged:
            options.append("--privileged")
        done = subprocess.run(
            ["podman", "exec", "--interactive", *options, self.name, *command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    def system_state(self) -> str:
        """What `systemctl is-system-running` says now: running, degraded (a unit failed),
        starting, stopping..."""
        return self.exec("systemctl", "is-system-running", check=False).stdout.strip()

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show` properties of a unit."""
        output = self.exec("systemctl", "show", unit, "-p", ",".join(properties)).stdout
        return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)

    def state(self, unit: str) -> str:
        values = self.show(unit, "ActiveState", "SubState")
        return f"{values['ActiveState']}/{values['SubState']}"

    def wait_for_state(self, unit: str, *states: str, timeout: float = 30) -> str:
        """Wait until the unit's ActiveState/SubState is one of ``states``; return it."""
        return wait_for(
            lambda: self.state(unit),
            timeout,
            0.1,
            f"{unit} to be {' or '.join(states)}",
            until=lambda state: state in states,
        )

    def wait_for_property(
        self, unit: str, name: str, wanted: Callable[[str], bool], timeout: float = 10
    ) -> str:
        """Wait until the unit's property ``name`` satisfies ``wanted``; return its value.

        A property can be briefly stale: a unit that restarts resets ExecMainStatus to 0
        while the next process runs, so a single read can land between two runs.
        """
        return wait_for(
            lambda: self.show(unit, name)[name], timeout, 0.1, f"{unit} {name}", until=wanted
        )

    def wait_for_status(self, unit: str, text: str, timeout: float = 10) -> str:
        """Wait until the unit's STATUS= (StatusText) contains ``text``."""
        return self.wait_for_property(unit, "StatusText", lambda status: text in status, timeout)

    def drop_in(self, unit: str, name: str, text: str) -> None:
        """Add /etc/systemd/system/UNIT.d/NAME.conf and reload, as an admin would."""
        directory = f"/etc/systemd/system/{unit}.d"
        self.exec("mkdir", "-p", directory)
        self.exec("sh", "-c", f"cat > {directory}/{name}.conf", input=text)
        self.exec("systemctl", "daemon-reload")

    def main_pid(self, unit: str = "greeter.service") -> str:
        return self.show(unit, "MainPID")["MainPID"]

    def kill_and_wait_for_restart(self, unit: str = "greeter.service") -> str:
        """kill -9 the unit's main process; return the new one's pid once systemd restarted it."""
        pid = self.main_pid(unit)
        self.exec("sh", "-c", f"kill -9 {pid}")
        return self.wait_for_property(unit, "MainPID", lambda new: new not in (pid, "0"))

    def client(
        self, *args: str, user: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return self.exec("greeter-client", *args, user=user, check=check)

    def load(self, *args: str, user: str | None = None, timeout: float = 300) -> dict[str, object]:
        """Run load.py inside the container and return its JSON report."""
        done = self.exec("python3", "-", *args, input=LOAD_SCRIPT, user=user, timeout=timeout)
        return dict(json.loads(done.stdout))

    def journal(self, *args: str) -> str:
        return self.exec("journalctl", "--no-pager", *args, check=False).stdout

    def journal_entries(self, unit: str) -> list[dict[str, str]]:
        output = self.exec("journalctl", "--no-pager", "-o", "json", "-u", unit, check=False).stdout
        return [json.loads(line) for line in output.splitlines() if line.startswith("{")]

    def diagnostics(self) -> str:
        status = self.exec(
            "systemctl",
            "status",
            "--no-pager",
            "--full",
            "greeter.socket",
            "greeter.service",
            check=False,
        ).stdout
        return (
            f"--- {self.image} ---\n--- systemctl status ---\n{status}\n"
            f"--- journalctl ---\n{self.journal('-n', '200')}"
        )

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


class Background:
    """Runs load.py in a thread; result() re-raises whatever went wrong there."""

    def __init__(self, container: Container, *args: str) -> None:
        self.report: dict[str, object] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(container, args))
        self.thread.start()

    def _run(self, container: Container, args: tuple[str, ...]) -> None:
        try:
            self.report = container.load(*args)
        except BaseException as error:  # handed to the test thread by result()
            self.error = error

    def result(self) -> dict[str, object]:
        self.thread.join(300)
        if self.error is not None:
            raise self.error
        return self.report


class User:
    """A user with lingering: their manager (user@UID.service) runs without a login."""

    def __init__(self, container: Container, name: str) -> None:
        self.container = container
        self.name = name
        container.exec("useradd", "--create-home", name)
        self.uid = int(container.exec("id", "-u", name).stdout)
        self.runtime_dir = f"/run/user/{self.uid}"

    def linger(self) -> None:
        self.container.exec("loginctl", "enable-linger", self.name)
        self.container.wait_for_state(f"user@{self.uid}.service", "active/running")

    def systemctl(self, *args: str, check: bool = True) -> str:
        """systemctl on this user's manager, run from root as an admin would."""
        done = self.container.exec(
            "systemctl", f"--machine={self.name}@", "--user", *args, check=check
        )
        return done.stdout

    def show(self, unit: str, name: str) -> str:
        return self.systemctl("show", unit, "-p", name, "--value").strip()

    def run(self, *command: str, check: bool = False):
        """``command`` in this user's session: their uid and XDG_RUNTIME_DIR."""
        return self.container.exec(
            "env", f"XDG_RUNTIME_DIR={self.runtime_dir}", *command, user=self.name, check=check
        )


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=600, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{done.stderr}")
    return done


def require_podman() -> None:
    require_tool("podman", "tests/run installs it")


def image_from(script: str, suite: str) -> str:
    """Run packaging/container/SCRIPT SUITE (it prints an image name) and return the name."""
    done = subprocess.run(
        [str(CONTAINER_DIR / script), suite],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, f"{script} {suite} failed:\n{done.stderr}"
    return done.stdout.strip()


def image_name(kind: str, suite: str) -> str:
    """This checkout's name for an image of ``kind`` on ``suite`` (packaging/container/image-name):
    checkouts on one machine never build over each other's images."""
    done = subprocess.run(
        [str(CONTAINER_DIR / "image-name"), kind, suite],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="session", params=SUITES)
def suite(request: pytest.FixtureRequest) -> str:
    """The Debian suite this test runs on; it is in the test's id, so each report names it."""
    return str(request.param)


# The package's dependencies (and systemd to boot) must be in the image already, so that apt
# installs the .deb without a package index or a network.
CLEAN_CONTAINERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY image-packages /tmp/image-packages
RUN packages=$(grep -o '^[^#[:space:]]*' /tmp/image-packages); \\
    dpkg -s $packages >/dev/null 2>&1 || { \\
        apt-get update \\
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages \\
        && rm -rf /var/lib/apt/lists/*; }
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
"""


@pytest.fixture(scope="session")
def clean_image(suite: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bootable image of ``suite`` made from its base image, without greeterd."""
    require_podman()
    base = image_from("base-image", suite)
    context = tmp_path_factory.mktemp("clean-image")
    (context / "Containerfile").write_text(CLEAN_CONTAINERFILE)
    shutil.copy(CONTAINER_DIR / "image-packages", context)
    image = image_name("greeterd-clean", suite)
    podman("build", "--build-arg", f"BASE_IMAGE={base}", "--tag", image, str(context))
    return image


#: The Debian version the upgrade test's newer build gets: above packaging/debian/changelog's.
NEWER = "+upgrade1"


@pytest.fixture(scope="session")
def debs(suite: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """greeterd's .deb, and a newer build of it (the changelog's version + NEWER), built once
    per suite by packaging/build-deb in one plain container of that suite, so that its
    debhelper and lintian judge them."""
    require_podman()
    out = tmp_path_factory.mktemp(f"deb-{suite}")
    version = subprocess.run(
        ["dpkg-parsechangelog", "-l", str(ROOT / "packaging/debian/changelog"), "-S", "Version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    script = (
        f"packaging/build-deb /out/current && "
        f"packaging/build-deb --version {version}{NEWER} /out/newer"
    )
    done = subprocess.run(
        [str(CONTAINER_DIR / "run-in"), "--out", str(out), suite, "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, f"packaging/build-deb on {suite} failed:\n{done.stderr[-8000:]}"
    lintian = [line for line in done.stderr.splitlines() if line[:3] in ("E: ", "W: ")]
    print(f"build-deb on {suite}: lintian says {lintian or 'nothing'}")
    built = [
        out / kind / Path(line).name
        for kind, line in zip(("current", "newer"), done.stdout.splitlines()[-2:], strict=True)
    ]
    for path in built:
        assert path.is_file(), done.stdout
    return built[0], built[1]


@pytest.fixture(scope="session")
def deb(debs: tuple[Path, Path]) -> Path:
    """greeterd's .deb as packaging/debian/changelog versions it."""
    return debs[0]


@pytest.fixture(scope="session")
def image(suite: str) -> str:
    """The project's image on ``suite``, built from the Containerfile (cached layers make
    this quick)."""
    require_podman()
    return image_from("build-image", suite)


@pytest.fixture
def container(image: str, request: pytest.FixtureRequest) -> Iterator[Container]:
    """A booted container; on failure its journal and unit status are printed."""
    booted = Container(image)
    try:
        booted.boot()
        yield booted
    finally:
        if request.node.stash.get(FAILED, True):
            print(booted.diagnostics())
        booted.remove()
