"""The Debian package on a clean system of each suite: packaging/build-deb builds the .deb from
this checkout with that suite's tools (in a plain container of it), apt installs it in a
container with systemd as PID 1 and no greeterd, and apt purges it again.

The clean image is the base image (packaging/container/base-image) with only the command that
boots systemd added, and the image's packages installed if the base lacks them (the
debootstrap base already has them): nothing of greeterd is in it. The clean image and the .debs
are conftest.py's fixtures, which test_autopkgtest.py shares.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.conftest import (
    FAILED,
    Background,
    Container,
    User,
    podman,
)
from tests.support import POISON, ROOT, WHERE_THE_LAUNCHER_LOOKS

SOCKET = "/run/greeter.sock"
UNIT_DIR = "/usr/lib/systemd/system"
UNITS = ("greeter.socket", "greeter.service")
#: Every unit file in packaging/, the opt-in ones (Accept=yes, seqpacket, datagram) included.
UNIT_FILES = sorted(
    p.name for p in (ROOT / "packaging").iterdir() if p.suffix in (".socket", ".service")
)
WANTS_LINK = "/etc/systemd/system/sockets.target.wants/greeter.socket"
#: Where `systemctl enable greeter-worker@N.service` links workers in: nothing, after install.
WORKERS_WANTED = "/etc/systemd/system/greeter.service.wants"
USER_UNIT_DIR = "/usr/lib/systemd/user"
#: The user units the package ships, and their sources in packaging/.
USER_UNIT_FILES = {
    "greeter.socket": ROOT / "packaging" / "greeter.socket",
    "greeter-varlink.socket": ROOT / "packaging" / "greeter-varlink.socket",
    "greeter.service": ROOT / "packaging" / "user" / "greeter.service",
}
USER_WANTS_LINK = "/etc/systemd/user/sockets.target.wants/greeter.socket"
MAN_PAGES = {
    "greeterd": "/usr/share/man/man8/greeterd.8.gz",
    "greeter-client": "/usr/share/man/man1/greeter-client.1.gz",
}


@pytest.fixture
def clean(clean_image: str, request: pytest.FixtureRequest) -> Iterator[Container]:
    """A booted container without greeterd; on failure its journal and unit status are printed."""
    booted = Container(clean_image)
    try:
        booted.boot()
        assert booted.exec("dpkg", "-s", "greeterd", check=False).returncode != 0
        assert booted.exec("sh", "-c", "command -v greeterd", check=False).returncode != 0
        assert booted.show("greeter.socket", "LoadState")["LoadState"] == "not-found"
        yield booted
    finally:
        if request.node.stash.get(FAILED, True):
            print(booted.diagnostics())
        booted.remove()


def apt_install(container: Container, deb: Path) -> subprocess.CompletedProcess[str]:
    """Copy the .deb into the container and install it with apt."""
    podman("cp", str(deb), f"{container.name}:/tmp/{deb.name}")
    return container.exec(
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", f"/tmp/{deb.name}"
    )


@pytest.fixture
def installed(clean: Container, deb: Path) -> Container:
    """A booted container with the .deb just installed, no client yet."""
    apt_install(clean, deb)
    return clean


def installed_packages(container: Container) -> set[str]:
    """The names of the packages dpkg has installed (not those removed with config left)."""
    listing = container.exec("dpkg-query", "-W", "-f", "${Status} ${Package}\n").stdout
    return {
        line.split()[-1]
        for line in listing.splitlines()
        if line.startswith("install ok installed ")
    }


def failed_units(container: Container) -> str:
    return container.exec("systemctl", "--failed", "--no-legend", "--plain").stdout


def test_apt_installs_offline_and_enables_and_starts_only_the_socket(clean, deb):
    """apt installs the .deb with nothing else to fetch; the package enables and starts
    greeter.socket (listening on /run/greeter.sock, mode 0666) and leaves greeter.service,
    static, inactive: only a client starts it."""
    failed_before = failed_units(clean)
    packages_before = installed_packages(clean)
    apt_install(clean, deb)
    assert installed_packages(clean) == {*packages_before, "greeterd"}
    assert clean.exec("systemctl", "is-enabled", "greeter.socket").stdout.strip() == "enabled"
    clean.exec("test", "-L", WANTS_LINK)  # enabled: sockets.target pulls it in at boot
    assert clean.state("greeter.socket") == "active/listening"
    assert clean.exec("stat", "-c", "%a %F", SOCKET).stdout.strip() == "666 socket"
    service = clean.exec("systemctl", "is-enabled", "greeter.service", check=False)
    assert service.stdout.strip() == "static"
    assert clean.state("greeter.service") == "inactive/dead"
    assert failed_units(clean) == failed_before


def test_the_first_client_starts_the_service(installed):
    """greeter.service stays inactive until the first client, which is greeted; then the
    service runs (notify-ready), and any user is greeted too."""
    assert installed.state("greeter.service") == "inactive/dead"
    done = installed.client("--name", "Zoë")
    assert (done.returncode, done.stdout) == (0, "Hello, Zoë\n"), done.stderr
    assert installed.state("greeter.service") == "active/running"
    installed.wait_for_status("greeter.service", "greeted")
    other = installed.client("--name", "Nobody", user="nobody")
    assert (other.returncode, other.stdout) == (0, "Hello, Nobody\n"), other.stderr


def test_python3_systemd_is_recommended_and_greeterd_greets_without_it(clean, deb):
    """The .deb Recommends python3-systemd and does not Depend on it (greeterd imports it only
    to notify systemd over a vsock NOTIFY_SOCKET; packaging/debian/py3dist-overrides keeps
    dh_python3 from turning pyproject's systemd-python into a dependency): with it purged, apt
    installs the package without recommends, and greeter.socket activates a greeterd that greets."""
    podman("cp", str(deb), f"{clean.name}:/tmp/{deb.name}")
    fields = clean.exec("dpkg-deb", "-f", f"/tmp/{deb.name}", "Depends", "Recommends").stdout
    depends, recommends = (
        dict(line.split(": ", 1) for line in fields.splitlines())[field]
        for field in ("Depends", "Recommends")
    )
    assert "python3-systemd" not in depends, depends
    assert recommends == "python3-systemd", recommends
    clean.exec("dpkg", "--purge", "python3-systemd")
    clean.exec(
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        f"/tmp/{deb.name}",
    )
    assert "python3-systemd" not in installed_packages(clean)
    no_module = clean.exec("python3", "-c", "import systemd", check=False)
    assert no_module.returncode != 0, "python3-systemd is still importable"
    done = clean.client("--name", "Zoë")
    assert (done.returncode, done.stdout) == (0, "Hello, Zoë\n"), done.stderr
    assert clean.state("greeter.service") == "active/running"


def test_the_package_installs_programs_module_units_and_man_pages(installed):
    """/usr/bin has both programs, the module is Debian's python3's, the units are the ones in
    packaging/ (unchanged, in /usr/lib/systemd/system), and the man pages are those the
    installed module renders from its option tables, so they match --help."""
    for program in ("greeterd", "greeter-client"):
        path = installed.exec("sh", "-c", f"command -v {program}").stdout.strip()
        assert path == f"/usr/bin/{program}"
        version = installed.exec(program, "--version").stdout
        assert "0.1.0" in version
    module = installed.exec("python3", "-c", "import greeterd; print(greeterd.__file__)").stdout
    assert module.strip() == "/usr/lib/python3/dist-packages/greeterd/__init__.py"
    for unit in UNIT_FILES:
        shipped = installed.exec("cat", f"{UNIT_DIR}/{unit}").stdout
        assert shipped == (ROOT / "packaging" / unit).read_text(), unit
    for program, page in MAN_PAGES.items():
        installed.exec("test", "-f", page)
        roff = installed.exec("zcat", page).stdout
        rendered = installed.exec("python3", "-m", "greeterd.manpage", program).stdout
        assert roff == rendered, page


def test_the_package_installs_the_user_units_enabled_for_nobody(installed):
    """/usr/lib/systemd/user has greeter.socket (the system's file) and the user
    greeter.service, unchanged; no user has them enabled, and a lingering user who starts the
    socket is greeted by their own instance."""
    for unit, source in USER_UNIT_FILES.items():
        shipped = installed.exec("cat", f"{USER_UNIT_DIR}/{unit}").stdout
        assert shipped == source.read_text(), unit
    assert installed.exec("test", "-e", USER_WANTS_LINK, check=False).returncode != 0
    user = User(installed, "alice")
    user.linger()
    assert user.show("greeter.socket", "UnitFileState") == "disabled"
    user.systemctl("start", "greeter.socket")
    done = user.run("greeter-client", "--name", "Alice")
    assert (done.returncode, done.stdout) == (0, "Hello, Alice\n"), done.stderr
    assert user.show("greeter.service", "ActiveState") == "active"


def test_the_installed_units_pass_systemd_analyze_verify(installed):
    """systemd-analyze verify accepts every installed socket, greeter.service and a worker
    (greeter-worker@2, a template enabled for nobody): it finds ExecStart=greeterd in /usr/bin
    and each socket's service (or template)."""
    assert installed.exec("test", "-e", WORKERS_WANTED, check=False).returncode != 0
    sockets = [unit for unit in UNIT_FILES if unit.endswith(".socket")]
    # --man=no: the minimal image has no man(1) to look up Documentation= pages with.
    units = [*sockets, "greeter.service", "greeter-worker@2.service"]
    verify = installed.exec("systemd-analyze", "verify", "--man=no", *units, check=False)
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == ""


def test_purge_stops_the_socket_and_leaves_no_unit_behind(installed):
    """With the service running (a client was greeted), apt purge stops the socket and the
    service with it, no unit fails, /run/greeter.sock and the unit files and enablement links
    are gone, and systemd no longer knows greeter.socket."""
    failed_before = failed_units(installed)
    assert installed.client("--name", "Zoë").stdout == "Hello, Zoë\n"
    assert installed.state("greeter.service") == "active/running"
    installed.exec("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "greeterd")
    assert installed.exec("dpkg", "-s", "greeterd", check=False).returncode != 0
    assert failed_units(installed) == failed_before
    for unit in UNITS:
        state = installed.show(unit, "LoadState", "ActiveState")
        assert state == {"LoadState": "not-found", "ActiveState": "inactive"}, unit
    status = installed.exec("systemctl", "status", "greeter.socket", check=False)
    assert status.returncode == 4, status.stdout + status.stderr  # 4: no such unit
    leftovers = [
        SOCKET,
        *(f"{UNIT_DIR}/{unit}" for unit in UNIT_FILES),
        *(f"{USER_UNIT_DIR}/{unit}" for unit in USER_UNIT_FILES),
        WANTS_LINK,
        "/var/lib/systemd/deb-systemd-helper-enabled/greeter.socket.dsh-also",
        "/usr/bin/greeterd",
        "/usr/bin/greeter-client",
    ]
    for path in leftovers:
        assert installed.exec("test", "-e", path, check=False).returncode != 0, path
    unit_files = installed.exec(
        "systemctl", "list-unit-files", "--no-legend", "greeter*", check=False
    ).stdout
    assert unit_files.strip() == ""


def test_the_launcher_starts_without_site_and_still_finds_everything(installed):
    """/usr/bin/greeterd runs python3 -IS (debian/rules puts the flags back): with a .pth file
    in dist-packages that stops any start that runs site, greeterd still finds itself and
    python3-systemd, and greeter.service greets."""
    assert installed.exec("head", "-n", "1", "/usr/bin/greeterd").stdout.endswith(" -IS\n")
    poison = "/usr/lib/python3/dist-packages/zz-greeterd-test.pth"
    installed.exec("sh", "-c", f"cat > {poison}", input=POISON)
    assert "site ran" in installed.exec("python3", "-c", "pass", check=False).stderr
    assert installed.exec("greeterd", "--version").stdout.startswith("greeterd ")
    found = installed.exec(
        "python3", "-IS", "-c", WHERE_THE_LAUNCHER_LOOKS, "/usr/bin/greeterd"
    ).stdout.split()
    assert [path.rpartition("/dist-packages/")[0] for path in found] == [
        "/usr/lib/python3",
        "/usr/lib/python3",
    ], found
    greeting = installed.exec(
        "python3",
        "-IS",
        "-c",
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/greeter.sock');"
        "s.sendall(b'Zoe\\n'); print(s.recv(99))",
    )
    assert greeting.stdout.strip() == "b'Hello, Zoe\\n'"


#: How long clients greet while the newer package is installed; the upgrade takes a few
#: seconds, and must be over well before the clients stop.
UPGRADE_LOAD_SECONDS = 20
#: Prints the monotonic time (µs, systemd's ...TimestampMonotonic clock) at which the file
#: named by argv[1] was last replaced: its ctime, taken from the realtime clock.
CHANGED_AT_MONOTONIC = (
    "import os, sys, time\n"
    "offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.monotonic_ns()\n"
    "print((os.stat(sys.argv[1]).st_ctime_ns - offset) // 1000)\n"
)


def test_an_upgrade_under_load_loses_no_client_and_never_stops_the_socket(clean, debs):
    """Installing a newer build over the package while clients greet in a loop: no client
    fails, greeter.socket is never stopped or restarted (the same InvocationID and
    ActiveEnterTimestamp, listening throughout, no connection refused), and greeter.service
    and its enabled worker (greeter-worker@2) end on the new code: new processes (new
    InvocationID and MainPID) started after dpkg had replaced greeterd's files. debian/rules
    says why the package does it this way."""
    deb, newer = debs
    apt_install(clean, deb)
    clean.exec("systemctl", "enable", "greeter-worker@2.service")
    assert clean.client("--name", "before").stdout == "Hello, before\n"
    clean.wait_for_state("greeter-worker@2.service", "active/running")
    socket_fields = ("InvocationID", "ActiveEnterTimestampMonotonic", "ActiveState", "SubState")
    socket_before = clean.show("greeter.socket", *socket_fields)
    services = ("greeter.service", "greeter-worker@2.service")
    before = {unit: clean.show(unit, "InvocationID", "MainPID") for unit in services}
    podman("cp", str(newer), f"{clean.name}:/tmp/{newer.name}")
    load = Background(clean, "steady", str(UPGRADE_LOAD_SECONDS), "4")
    time.sleep(2)
    started = time.monotonic()
    clean.exec(
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", f"/tmp/{newer.name}"
    )
    upgrade_took = time.monotonic() - started
    result = load.result()
    print(
        f"upgrade to {newer.name} in {upgrade_took:.1f} s under load: "
        f"{result['greeted']} greeted, {result['failed']} failed"
    )
    assert upgrade_took < UPGRADE_LOAD_SECONDS - 5, "the clients stopped before the upgrade did"
    assert result["failed"] == 0, result["failures"]
    version = clean.exec("dpkg-query", "-W", "-f", "${Version}", "greeterd").stdout
    assert newer.name.startswith(f"greeterd_{version}_"), version
    socket_after = clean.show("greeter.socket", *socket_fields)
    assert socket_after == socket_before, "greeter.socket was stopped or restarted"
    refused = clean.show("greeter.socket", "NRefused").get("NRefused", "0")
    assert refused == "0", f"greeter.socket refused {refused} connections"
    assert clean.client("--name", "after").stdout == "Hello, after\n"
    replaced = int(
        clean.exec(
            "python3",
            "-c",
            CHANGED_AT_MONOTONIC,
            "/usr/lib/python3/dist-packages/greeterd/__init__.py",
        ).stdout
    )
    for unit in services:
        clean.wait_for_state(unit, "active/running")
        after = clean.show(unit, "InvocationID", "MainPID", "ExecMainStartTimestampMonotonic")
        assert after["InvocationID"] != before[unit]["InvocationID"], unit
        assert after["MainPID"] not in (before[unit]["MainPID"], "0"), unit
        assert int(after["ExecMainStartTimestampMonotonic"]) > replaced, (
            f"{unit} runs code from before the upgrade"
        )
