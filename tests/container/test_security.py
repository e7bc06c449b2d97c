"""The hardened unit under systemd: its exposure score, its sandbox, access control, safe logs."""

import json
import re

from tests.support import ROOT

#: systemd-analyze security --threshold takes tenths of the displayed 0-10 score: 5 is 0.5.
THRESHOLD = 5


def test_the_service_scores_0_5_or_better(container):
    """systemd-analyze security rates greeter.service 0.5 or lower (--threshold fails above),
    and a worker (greeter-worker@2.service) exactly the same."""
    scores = {}
    for unit in ("greeter.service", "greeter-worker@2.service"):
        done = container.exec(
            "systemd-analyze", "security", f"--threshold={THRESHOLD}", unit, check=False
        )
        score = re.search(rf"Overall exposure level for {unit}: (\d+\.\d)", done.stdout)
        assert score, done.stdout + done.stderr
        assert done.returncode == 0, done.stdout
        scores[unit] = score.group(1)
    print(f"systemd-analyze security: {scores}")
    assert float(scores["greeter.service"]) <= THRESHOLD / 10
    assert scores["greeter-worker@2.service"] == scores["greeter.service"]


#: The uids systemd hands to DynamicUser= services (systemd.exec(5)).
DYNAMIC_UIDS = range(61184, 65520)
#: The namespaces greeter.service asks for: PrivateNetwork=, the file-system directives
#: (ProtectSystem=, PrivateTmp=, ...), PrivateIPC= and ProtectHostname=.
OWN_NAMESPACES = ("net", "mnt", "ipc", "uts")
CAPABILITY_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
#: What systemd logs when it cannot set up a sandbox directive and runs the service without
#: it (systemd 257 with PrivateNetwork= and no CAP_NET_ADMIN, for one; "BPF firewalling not
#: supported, proceeding without" where IPAddressDeny= cannot be attached).
DOWNGRADE = re.compile(r"proceeding without|lack privileges|not supported", re.IGNORECASE)
#: What systemd's own lines about a unit say when it skips or fails part of its set-up.
SKIPPED = re.compile(r"proceeding without|lack privileges|not supported|failed to", re.IGNORECASE)
#: greeter.service's cgroup in the unified hierarchy, as /proc/PID/cgroup names it ("0::")
#: and as the container's /sys/fs/cgroup holds it.
CGROUP = "/system.slice/greeter.service"
#: The BPF programs systemd attaches to the service's cgroup, by attach type and the name
#: systemd gives them (the same in 252, 257 and 262): IPAddressDeny=any is a pair of
#: cgroup_skb programs; DevicePolicy=closed with PrivateDevices= is a cgroup_device program,
#: which only the unified hierarchy has (under cgroup v1 the devices controller does it).
BPF_PROGRAMS = {
    ("cgroup_inet_ingress", "sd_fw_ingress"): "IPAddressDeny=",
    ("cgroup_inet_egress", "sd_fw_egress"): "IPAddressDeny=",
    ("cgroup_device", "sd_devices"): "DevicePolicy=",
}
#: Resource limits systemd enforces through a unified-hierarchy controller: (property, the
#: controller, the file the limit is written to in the service's cgroup).
CONTROLLED_LIMITS = (("TasksMax", "pids", "pids.max"), ("MemoryMax", "memory", "memory.max"))


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


def test_cgroup_v2_holds_the_daemon_and_its_bpf_programs(container, suite):
    """greeterd runs in its own cgroup of the unified hierarchy (cgroup2 is all there is at
    /sys/fs/cgroup), and the kernel has systemd's BPF programs attached to that cgroup:
    IPAddressDeny='s ingress and egress filters and DevicePolicy='s device filter, as
    bpftool reads them from the kernel. Any line in which systemd says it skipped or failed
    part of the unit's set-up is printed and fails the test, and so does a program that is
    missing without one. The limits this machine's cgroup v2 cannot enforce (no controller
    enabled) are printed."""
    assert container.client("--name", "Zoë").stdout == "Hello, Zoë\n"
    pid = container.main_pid()
    assert container.exec("stat", "-f", "-c", "%T", "/sys/fs/cgroup").stdout == "cgroup2fs\n"
    memberships = container.exec("cat", f"/proc/{pid}/cgroup").stdout.splitlines()
    assert f"0::{CGROUP}" in memberships, memberships
    skipped = [
        line
        for line in container.journal("-u", "greeter.service", "_PID=1", "-o", "cat").splitlines()
        if SKIPPED.search(line)
    ]
    print(f"systemd {suite} skipped or failed for greeter.service: {skipped or 'nothing'}")
    shown = container.exec("bpftool", "-j", "cgroup", "show", f"/sys/fs/cgroup{CGROUP}").stdout
    attached = {(p["attach_type"], p["name"]) for p in json.loads(shown or "[]")}
    missing = [directive for program, directive in BPF_PROGRAMS.items() if program not in attached]
    assert missing == [], f"no BPF program for {missing} on {CGROUP}; systemd said: {skipped}"
    assert skipped == [], f"systemd on {suite} skipped part of greeter.service's set-up"
    controllers = container.exec("cat", "/sys/fs/cgroup/cgroup.controllers").stdout.split()
    unenforced = []
    for name, controller, limit_file in CONTROLLED_LIMITS:
        value = container.show("greeter.service", name)[name]
        written = container.exec("test", "-e", f"/sys/fs/cgroup{CGROUP}/{limit_file}", check=False)
        if controller not in controllers:
            assert written.returncode != 0, f"{limit_file} without the {controller} controller"
            unenforced.append(f"{name}={value} (no {controller} controller)")
    print(
        f"cgroup v2 on {suite}: greeterd in 0::{CGROUP}; BPF attached: "
        f"{', '.join(sorted(name for _, name in attached))}; controllers: "
        f"{' '.join(controllers) or 'none'}; not enforced here: {', '.join(unenforced) or 'none'}"
    )


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
