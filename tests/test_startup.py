"""What greeterd loads before its first greeting: a cold start pays for every module."""

import subprocess
import sys

from tests.support import ROOT

# Each costs start-up time greeterd avoids (docs/performance.md): socket.py and signal.py build
# enums and load selectors and collections; array loads collections.abc; os builds os.environ
# on _collections_abc; systemd-python loads libsystemd; site runs .pth files; the rest are large.
# json (with greeterd.varlink and greeterd.sessions) is imported only when a Varlink socket is
# served, greeterd.datagrams only when a datagram socket is, greeterd.folding at the first
# refusal (or for --help).
NOT_AT_START_UP = {
    "argparse",
    "array",
    "asyncio",
    "collections.abc",
    "enum",
    "greeterd.datagrams",
    "greeterd.folding",
    "greeterd.sessions",
    "greeterd.varlink",
    "json",
    "logging",
    "os",
    "re",
    "selectors",
    "signal",
    "site",
    "socket",
    "systemd",
    "systemd._daemon",
    "systemd.daemon",
    "systemd.journal",
    "typing",
}

#: Run as `python -IS`, as the launcher runs greeterd; argv[1] is this checkout.
REPORT_NEW_MODULES = """
import sys
sys.path.insert(0, sys.argv[1])
before = set(sys.modules)
import greeterd.daemon
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_the_daemon_imports_only_what_the_first_greeting_needs():
    """Importing greeterd.daemon (what the launcher does) loads none of the costly modules."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", REPORT_NEW_MODULES, str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = set(done.stdout.split())
    assert "greeterd.server" in loaded, "the check did not see greeterd's own modules"
    assert loaded & NOT_AT_START_UP == set()
