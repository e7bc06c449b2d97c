"""One user floods greeterd with idle connections under systemd: with each user's share
(server.MAX_CLIENTS_PER_UID), another user's greetings still come within milliseconds.

The flood: nobody runs one process that keeps 13,050 connections open (more than greeterd's
8192 places and the backlog's 4097 together), sends nothing, and reopens each one greeterd
closes; it raises its own soft limit on open files, as any user may. greeterd runs with the
unit's LimitNOFILE=16384, so its share is the one it ships with. Set GREETER_SHARE=cap to run
the same with the share set to the whole cap, and GREETER_FLOOD_PROCESSES=N to spread the same
connections over N flooding processes: both only print the figures (docs/performance.md).
"""

import os
import re
from typing import Any

from greeterd import server
from tests.container.conftest import Container

#: How long the flood lasts: past the 5 s read deadline four times over.
FLOOD_SECONDS = 22
#: Flooding processes, and connections each keeps open: 13,050 in all.
PROCESSES = int(os.environ.get("GREETER_FLOOD_PROCESSES", "1"))
EACH = 13_050 // PROCESSES
#: The other user, whose greetings are probed: not root (root is exempt from the share).
PROBE_USER = "probe"
#: The other user's probes must stay under this, at the 99th percentile.
P99_MS = 100
#: Only print the figures: without the share (GREETER_SHARE=cap), or a flood from more than one
#: process (GREETER_FLOOD_PROCESSES).
MEASURE_ONLY = os.environ.get("GREETER_SHARE") == "cap" or PROCESSES != 1
WITHOUT_SHARE = os.environ.get("GREETER_SHARE") == "cap"

# The share set to the whole cap, for the measurement without it: the same daemon, with
# Server's default for max_clients_per_uid replaced before it starts.
WITHOUT_SHARE_DROP_IN = f"""[Service]
ExecStart=
ExecStart=/usr/bin/python3 -c "import sys, greeterd.daemon as d, greeterd.server as s; \
s.Server.__init__.__kwdefaults__['max_clients_per_uid'] = {server.MAX_CONNECTIONS}; \
sys.argv[0] = 'greeterd'; sys.exit(d.main())" --exit-idle-time=30
"""


def flood(container: Container, *, varlink: bool = False) -> dict[str, Any]:
    """Warm greeterd up, flood it for FLOOD_SECONDS while the probe user greets, and check
    that systemd neither restarted nor replaced it; return load.py's report."""
    if WITHOUT_SHARE:
        container.drop_in("greeter.service", "without-share", WITHOUT_SHARE_DROP_IN)
    container.exec("useradd", "--no-create-home", PROBE_USER)
    probe_uid = container.exec("id", "-u", PROBE_USER).stdout.strip()
    if varlink:
        container.exec("systemctl", "enable", "--now", "greeter-varlink.socket")
    assert container.client("--name", "warm").returncode == 0
    pid = container.main_pid()
    limits = container.exec("cat", f"/proc/{pid}/limits").stdout
    assert re.search(r"^Max open files +16384 +16384 ", limits, re.MULTILINE), limits
    args = ["idle-flood", str(FLOOD_SECONDS), str(PROCESSES), str(EACH), probe_uid, pid]
    result = container.load(*args, *(["varlink"] if varlink else []), timeout=FLOOD_SECONDS + 120)
    after = container.show("greeter.service", "NRestarts", "MainPID")
    assert after == {"NRestarts": "0", "MainPID": pid}, "greeterd was restarted or replaced"
    share = "without the share" if WITHOUT_SHARE else "with the share"
    print(f"{container.image}, {'Varlink' if varlink else 'line protocol'}, {share}: {result}")
    return result


def check(result: dict[str, Any]) -> None:
    """The other user's probes all greeted, p99 under P99_MS; the flooder's excess clients
    got 'too many clients of this user waiting'; greeterd's memory stayed within bounds."""
    if MEASURE_ONLY:
        return
    for kind, probes in result["probes"].items():
        assert probes["failed"] == 0, f"{kind}: {probes['failures']}"
        assert probes["greeted"] >= 100, f"{kind}: too few probes to judge: {probes}"
        assert probes["p99_ms"] < P99_MS, f"{kind}: p99 of {P99_MS} ms not met: {probes}"
    assert result["command_failures"] == [], result["command_failures"]
    flood = result["flood"]
    assert flood["opened"] > 13_000, f"no flood to speak of: {flood}"
    assert flood["too_many"] > 1000, f"the flooder's excess was not refused: {flood}"
    # The worst case README's limits table gives is about 9 MiB above the idle process for the
    # line protocol (130 MiB with Varlink); a flood held to the share takes far less.
    rss = result["rss_kib"]
    assert rss["max"] - rss["first"] < 40 * 1024, f"RSS grew by {rss['max'] - rss['first']} KiB"


def test_an_idle_flood_by_one_user_leaves_the_others_greeted_at_once(container):
    """nobody floods /run/greeter.sock with about 13,000 silent connections for 22 s: another
    user's raw clients and greeter-client (its exchange() every 100 ms, the command every
    40 probes) are all greeted; nobody's excess connections get 'too many clients of this user
    waiting'; greeterd's RSS stays bounded and systemd never restarts it (NRestarts 0, the
    same MainPID). The other user's p99 stays under 100 ms (p50, p99 and max are printed)."""
    check(flood(container))


def test_an_idle_varlink_flood_by_one_user_leaves_the_others_greeted_at_once(container):
    """The same over /run/io.greeterd.Greeter (every suite has greeter-varlink.socket; the
    probe is a raw call, as Debian 12 has no varlinkctl): nobody's silent Varlink connections
    past the share get one TooManyClients error and are closed, and another user's Greet calls
    are all answered, p99 under 100 ms."""
    check(flood(container, varlink=True))
