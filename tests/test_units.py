"""The unit files in packaging/: what must stay consistent between them."""

from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGING = ROOT / "packaging"
SANDBOX_START = "# -- identity and privileges"


def sandbox(unit: str) -> str:
    text = (PACKAGING / unit).read_text()
    assert SANDBOX_START in text, f"{unit} has no sandbox section"
    return text[text.index(SANDBOX_START) :].split("\n[Install]", 1)[0]


@pytest.mark.parametrize("template", ["greeter-accept@.service", "greeter-worker@.service"])
def test_the_templates_have_exactly_the_main_services_sandbox(template):
    """greeter-accept@.service and greeter-worker@.service copy greeter.service's sandbox;
    this keeps them identical."""
    assert sandbox(template) == sandbox("greeter.service")


def lifecycle(unit: Path) -> list[str]:
    """A service's directives before its sandbox section, without comments."""
    lines = unit.read_text().split("\n# --", 1)[0].splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_the_user_service_has_exactly_the_main_services_lifecycle():
    """packaging/user/greeter.service starts, restarts, watches and stops greeterd exactly as
    the system's greeter.service; only the sandbox may differ."""
    assert lifecycle(PACKAGING / "user" / "greeter.service") == lifecycle(
        PACKAGING / "greeter.service"
    )


#: What makes systemd supervise greeterd: readiness, restarts, the watchdog, the stop budget,
#: a shared listening socket kept non-blocking, the open-files limit, no start limit.
SUPERVISION = (
    "Type",
    "NotifyAccess",
    "Restart",
    "RestartSec",
    "WatchdogSec",
    "TimeoutStopSec",
    "NonBlocking",
    "LimitNOFILE",
    "StartLimitIntervalSec",
)


def test_a_worker_is_supervised_as_greeter_service_is():
    """greeter-worker@.service is supervised as greeter.service is, never exits on idle (the
    group's idleness is greeter.service's), names itself, takes greeter.socket's listening
    socket and lives and dies with greeter.service."""
    main = lifecycle(PACKAGING / "greeter.service")
    worker = lifecycle(PACKAGING / "greeter-worker@.service")
    supervision = [line for line in main if line.split("=", 1)[0] in SUPERVISION]
    assert len(supervision) == len(SUPERVISION)
    assert [line for line in worker if line.split("=", 1)[0] in SUPERVISION] == supervision
    for line in (
        "ExecStart=greeterd --name=worker-%i",
        "Sockets=greeter.socket",
        "BindsTo=greeter.service",
        "After=greeter.service",
    ):
        assert line in worker


def test_every_socket_unit_names_a_socket_under_run():
    """Each socket listens on its own path in /run (%t is /run for the system's manager),
    removed when the socket stops."""
    paths = []
    for unit in sorted(PACKAGING.glob("*.socket")):
        lines = unit.read_text().splitlines()
        listen = [line.split("=", 1)[1] for line in lines if line.startswith("Listen")]
        assert len(listen) == 1, unit.name
        listen[0] = listen[0].replace("%t/", "/run/")
        assert listen[0].startswith(("/run/greeter", "/run/io.greeterd.")), unit.name
        assert "RemoveOnStop=yes" in lines, unit.name
        paths.append(listen[0])
    assert len(set(paths)) == len(paths) == 5
