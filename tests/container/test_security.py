"""The hardened unit under systemd: its exposure score, its sandbox, access control, safe logs."""

import re

from tests.support import ROOT

#: systemd-analyze security --threshold takes tenths of the displayed 0-10 score: 5 is 0.5.
THRESHOLD = 5


def test_the_service_scores_0_5_or_better(container):
    """systemd-analyze security rates greeter.service 0.5 or lower; --threshold fails above."""
    done = container.exec(
        "systemd-analyze", "security", f"--threshold={THRESHOLD}", "greeter.service", check=False
    )
    score = re.search(r"Overall exposure level for greeter.service: (\d+\.\d)", done.stdout)
    assert score, done.stdout + done.stderr
    print(f"systemd-analyze security: {score.group(1)}")
    assert done.returncode == 0, done.stdout
    assert float(score.group(1)) <= THRESHOLD / 10


#: The uids systemd hands to DynamicUser= services (systemd.exec(5)).
DYNAMIC_UIDS = range(61184, 65520)
#: The namespaces greeter.service asks for: PrivateNetwork=, the file-system directives
#: (ProtectSystem=, PrivateTmp=, ...), PrivateIPC= and ProtectHostname=.
OWN_NAMESPACES = ("net", "mnt", "ipc", "uts")
CAPABILITY_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
#: What systemd logs when it cannot set up a sandbox directive and runs the service without
#: it (systemd 257 with PrivateNetwork= and no CAP_NET_ADMIN, for one).
DOWNGRADE = re.compile(r"proceeding without|lack privileges", re.IGNORECASE)


def test_the_sandbox_is_in_force_not_just_written(container, suite):
    """Seen from outside, the greeterd that greets has namespaces of its own (network, mounts,
    IPC, host name), no capability in any set, a dynamic uid, no new privileges and a seccomp
    filter; and systemd logged no sandbox it skipped (a silent downgrade fails the test)."""
    assert container.client("--name", "Zoë").stdout == "Hello, Zoë\n"
    pid = container.main_pid()
    for namespace in OWN_NAMESPACES:
        own, systemds = container.exec(
            "readlink", f"/proc/{pid}/ns/{namespace}", f"/proc/1/ns/{namespace}", privileged=True
        ).stdout.split()
        assert own != systemds, f"greeterd shares systemd's {namespace} namespace ({own})"
    status = container.exec("cat", f"/proc/{pid}/status").stdout
    fields = {
        key: value.strip() for key, value in (line.split(":", 1) for line in status.splitlines())
    }
    for capabilities in CAPABILITY_SETS:
        assert fields[capabilities] == "0000000000000000", f"{capabilities}={fields[capabilities]}"
    uid = int(fields["Uid"].split()[0])
    assert uid in DYNAMIC_UIDS, f"uid {uid} is not a DynamicUser= uid"
    assert fields["NoNewPrivs"] == "1"
    assert fields["Seccomp"] == "2", "no seccomp filter (2 = filter mode)"
    downgrades = [
        line for line in container.journal("-o", "cat").splitlines() if DOWNGRADE.search(line)
    ]
    assert downgrades == [], f"systemd on {suite} ran greeterd with a weaker sandbox"
    print(f"sandbox on {suite}: uid {uid}, own {', '.join(OWN_NAMESPACES)} namespaces, seccomp")


def test_the_sandboxed_daemon_still_works_and_logs(container):
    """Inside its sandbox greeterd refuses a bad name and the journal gets the line."""
    container.exec(
        "python3",
        "-c",
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/greeter.sock');"
        "s.sendall(b'\\n'); s.recv(99)",
    )
    entries = container.journal_entries("greeter.service")
    assert any(e.get("GREETER_REASON") == "empty name" for e in entries)


def test_the_group_drop_in_admits_members_and_refuses_others(container):
    """packaging/greeter-group.conf: the socket becomes 0660 root:greeter; a member is
    greeted, anyone else gets 'permission denied' with a hint and exit status 77."""
    container.exec("groupadd", "--system", "greeter")
    container.exec("useradd", "--groups", "greeter", "member")
    container.exec("useradd", "outsider")
    container.drop_in(
        "greeter.socket", "greeter-group", (ROOT / "packaging" / "greeter-group.conf").read_text()
    )
    container.exec("systemctl", "restart", "greeter.socket")
    owner = container.exec("stat", "-c", "%a %U:%G", "/run/greeter.sock").stdout.strip()
    assert owner == "660 root:greeter"
    member = container.client("--name", "Member", user="member")
    assert (member.returncode, member.stdout) == (0, "Hello, Member\n"), member.stderr
    outsider = container.client("--name", "Outsider", user="outsider")
    assert outsider.returncode == 77
    assert "permission denied" in outsider.stderr
    assert "group" in outsider.stderr
    assert "Traceback" not in outsider.stderr


ESCAPES = {
    "ANSI colour": b"\x1b[31mred\x1b[0m",
    "OSC title": b"\x1b]0;owned\x07",
    "OSC 8 hyperlink": b"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\",
    "bidi override": "\u202eevil".encode(),
    "C1 CSI": "\u009b31m".encode(),
}


def test_nothing_a_client_sends_reaches_the_journal_unescaped(container):
    """Names with terminal escapes and bidi overrides are refused, and the journal line (and
    every field) shows them escaped: no ESC, BEL, C1 or bidi control reaches a reader."""
    script = (
        "import socket, sys\n"
        "for data in sys.stdin.buffer.read().split(b'\\0'):\n"
        "    s = socket.socket(socket.AF_UNIX); s.connect('/run/greeter.sock')\n"
        "    s.sendall(data + b'\\n'); print(s.recv(99)); s.close()\n"
    )
    sent = b"\0".join(ESCAPES.values()).decode("utf-8")
    container.exec("python3", "-c", script, input=sent)
    entries = [e for e in container.journal_entries("greeter.service") if "GREETER_REASON" in e]
    assert len(entries) == len(ESCAPES)
    forbidden = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
    for entry in entries:
        for key, value in entry.items():
            if key.startswith(("MESSAGE", "GREETER_")):
                assert not forbidden.search(value), f"{key}={value!r}"
    text = container.journal("-u", "greeter.service", "-o", "cat")
    assert "\\x1b[31mred" in text
    assert "\\u202eevil" in text


def test_the_sandboxed_daemon_raises_its_soft_fd_limit(container):
    """With a soft open-files limit below the hard one (an admin's LimitNOFILE=512:1024),
    greeterd in its sandbox raises the soft limit to the hard one once it has greeted the
    client that started it (the system call filter lets setrlimit() through)."""
    container.drop_in("greeter.service", "low-soft-limit", "[Service]\nLimitNOFILE=512:1024\n")
    container.exec("systemctl", "stop", "greeter.service")
    try:
        for name in ("first", "second"):  # the second is served after the raise
            assert container.client("--name", name).stdout == f"Hello, {name}\n"
        limits = container.exec("cat", f"/proc/{container.main_pid()}/limits").stdout
        assert re.search(r"^Max open files +1024 +1024 ", limits, re.MULTILINE), limits
    finally:
        container.exec("rm", "/etc/systemd/system/greeter.service.d/low-soft-limit.conf")
        container.exec("systemctl", "daemon-reload")
        container.exec("systemctl", "stop", "greeter.service")
