"""greeter-varlink.socket under systemd: varlinkctl, a client nobody here wrote, on Debian 13;
a raw Varlink call on every Debian (12 has no varlinkctl)."""

import json

from greeterd import varlink
from tests.container.conftest import VARLINK_CALL, Container

ADDRESS = "/run/io.greeterd.Greeter"


def enable_varlink(container: Container) -> None:
    container.exec("systemctl", "enable", "--now", "greeter-varlink.socket")
    assert container.state("greeter-varlink.socket") == "active/listening"


def raw_call(container: Container, method: str, parameters: dict[str, str]) -> dict[str, object]:
    done = container.exec(
        "python3", "-c", VARLINK_CALL, ADDRESS, method, json.dumps(parameters), user="nobody"
    )
    return dict(json.loads(done.stdout))


def test_a_raw_varlink_call_activates_the_same_greeter_service(container):
    """A Greet call on /run/io.greeterd.Greeter, from another user, starts greeter.service,
    which serves /run/greeter.sock too: one process, both protocols."""
    enable_varlink(container)
    assert container.state("greeter.service") == "inactive/dead"
    reply = raw_call(container, "io.greeterd.Greeter.Greet", {"name": "Zoë"})
    assert reply == {"parameters": {"greeting": "Hello, Zoë"}}
    pid = container.main_pid()
    assert container.client("--name", "Ada").stdout == "Hello, Ada\n"
    assert container.main_pid() == pid
    container.wait_for_status("greeter.service", "2 greeted")
    refused = raw_call(container, "io.greeterd.Greeter.Greet", {"name": ""})
    assert refused == {"error": varlink.INVALID_NAME, "parameters": {"reason": "empty name"}}
    entries = container.journal_entries("greeter.service")
    assert any(e.get("GREETER_REASON") == "empty name" for e in entries)


def test_varlinkctl_calls_and_introspects_greeterd(container, suite):
    """varlinkctl (systemd 257) calls Greet, gets InvalidName for a bad name, and reads info,
    the interface list, the method list and the IDL, all from greeterd itself. Debian 12's
    systemd 252 has no varlinkctl (it came with 255): there the test checks it is absent."""
    has_varlinkctl = container.exec("sh", "-c", "command -v varlinkctl", check=False)
    if suite == "bookworm":
        assert has_varlinkctl.returncode != 0, "bookworm gained varlinkctl: test it there too"
        return
    enable_varlink(container)
    greeted = container.exec(
        "varlinkctl", "call", ADDRESS, "io.greeterd.Greeter.Greet", '{"name":"Zoë"}'
    )
    assert json.loads(greeted.stdout) == {"greeting": "Hello, Zoë"}
    refused = container.exec(
        "varlinkctl", "call", ADDRESS, "io.greeterd.Greeter.Greet", '{"name":""}', check=False
    )
    assert refused.returncode != 0
    assert json.loads(refused.stdout) == {"reason": "empty name"}
    assert "failed: io.greeterd.Greeter.InvalidName" in refused.stderr
    info = container.exec("varlinkctl", "info", ADDRESS).stdout.splitlines()
    assert [line.split()[-1] for line in info] == [
        "greeterd",
        "greeterd",
        "0.1.0",
        "man:greeterd(8)",
        "io.greeterd.Greeter",
        "org.varlink.service",
    ]
    interfaces = container.exec("varlinkctl", "list-interfaces", ADDRESS).stdout.split()
    assert interfaces == ["io.greeterd.Greeter", "org.varlink.service"]
    methods = container.exec("varlinkctl", "list-methods", ADDRESS).stdout.split()
    assert methods == [
        "io.greeterd.Greeter.Greet",
        "org.varlink.service.GetInfo",
        "org.varlink.service.GetInterfaceDescription",
    ]
    idl = container.exec("varlinkctl", "introspect", ADDRESS, "io.greeterd.Greeter").stdout
    assert "interface io.greeterd.Greeter" in idl
    assert "method Greet(\n\tname: string\n) -> (\n\tgreeting: string\n)" in idl
    assert "error InvalidName(\n\treason: string\n)" in idl


#: Debian's python3-varlink, the reference implementation's Python client: it reads greeterd's
#: IDL with its own parser and builds the call from it.
PYTHON_VARLINK = """
import sys, varlink
with varlink.Client(sys.argv[1]) as client, client.open("io.greeterd.Greeter") as greeter:
    print(greeter.Greet("Zoë")["greeting"])
    try:
        greeter.Greet("a\\x1bb")
    except varlink.VarlinkError as refused:
        print(refused.error(), refused.parameters()["reason"])
"""


def test_debians_python_varlink_client_is_greeted(container, suite):
    """A second client nobody here wrote: Debian 13's python3-varlink parses the IDL greeterd
    serves, calls Greet, and gets InvalidName as a VarlinkError. Debian 12 has no such
    package: there the test checks it is absent."""
    container.exec("apt-get", "update", "-q", timeout=300)
    if suite == "bookworm":
        found = container.exec("apt-cache", "show", "python3-varlink", check=False)
        assert found.returncode != 0, "bookworm gained python3-varlink: test it there too"
        return
    container.exec(
        "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
        "--no-install-recommends", "python3-varlink", timeout=300,
    )  # fmt: skip
    enable_varlink(container)
    done = container.exec("python3", "-c", PYTHON_VARLINK, f"unix:{ADDRESS}", user="nobody")
    assert done.stdout.splitlines() == [
        "Hello, Zoë",
        f"{varlink.INVALID_NAME} control character in name",
    ]
