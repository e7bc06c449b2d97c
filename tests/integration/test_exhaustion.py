"""Many idle clients, and running out of file descriptors: greeterd bends and recovers."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from greeterd import protocol, server
from tests.support import (
    HELLO,
    connect,
    greet,
    open_fds,
    proc_number,
    read_reply,
    require_tool,
    rss_kib,
    varlink_call,
    varlink_replies,
    wait_for,
)

IDLE_CLIENTS = 5000  # held by this test process, and as many by greeterd (each raises its limit)
# What may stay with the server once they have gone: the malloc heap keeps a few hundred KiB of
# the fd tables (waiting.py) in its free lists. Per-client Python objects kept over 1 MiB.
RETURNED_KIB = 512


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def hold_idle_clients(path: Path, pid: int, base_fds: int) -> int:
    """Hold IDLE_CLIENTS silent connections until the deadline ends them; return the RSS
    (KiB) while they were held. Checks that a new client is greeted promptly meanwhile and
    that every idle one gets the timeout line."""
    idle = [connect(path, timeout=30) for _ in range(IDLE_CLIENTS)]
    try:
        opened = time.monotonic()
        wait_for(lambda: open_fds(pid) >= base_fds + IDLE_CLIENTS, what="idle clients accepted")
        held_rss = rss_kib(pid)
        started = time.monotonic()
        assert greet(path) == HELLO
        assert time.monotonic() - started < 0.5, "a new client waited behind idle ones"
        replies = {read_reply(sock) for sock in idle}
        assert replies == {protocol.format_error(protocol.TIMED_OUT)}
        assert time.monotonic() - opened >= server.READ_TIMEOUT - 0.5
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: open_fds(pid) == base_fds, what="fds back to the baseline")
    return held_rss


def test_5000_idle_clients_neither_block_nor_leak(activate, open_files):
    """5,000 silent connections, twice: a new client is greeted promptly, each idle one gets
    the timeout line at the read deadline, fds go back to the baseline, each idle client costs
    at most 2 KiB, and the memory goes back once they leave (RSS within RETURNED_KIB of the
    baseline after each wave)."""
    open_files(IDLE_CLIENTS)
    daemon = activate()
    assert greet(daemon.path) == HELLO
    pid = daemon.process.pid
    for _ in range(200):
        greet(daemon.path)
    base_fds, base_rss = open_fds(pid), rss_kib(pid)
    held_rss = hold_idle_clients(daemon.path, pid, base_fds)
    after_first = rss_kib(pid)
    per_client = (held_rss - base_rss) * 1024 / IDLE_CLIENTS
    hold_idle_clients(daemon.path, pid, base_fds)
    after_second = rss_kib(pid)
    print(
        f"RSS: {base_rss} KiB before, {held_rss} KiB with {IDLE_CLIENTS} idle clients "
        f"({per_client:.0f} B each), {after_first} KiB after, {after_second} KiB after another"
    )
    assert per_client <= 2048
    assert after_first <= base_rss + RETURNED_KIB, "the first wave's memory was kept"
    assert after_second <= base_rss + RETURNED_KIB, "the second wave's memory was kept"
    assert greet(daemon.path) == HELLO


def greet_over_varlink(sock: socket.socket) -> bytes:
    sock.sendall(varlink_call("io.greeterd.Greeter.Greet", name="Ada"))
    greeting: str = varlink_replies(sock, 1)[0]["parameters"]["greeting"]
    return greeting.encode() + b"\n"


def greet_over_a_line(sock: socket.socket) -> bytes:
    sock.sendall(b"Ada\n")
    return read_reply(sock)


def soft_fd_limit(pid: int) -> int:
    return proc_number(pid, "limits", "Max open files", 3)


def test_greeterd_raises_its_soft_fd_limit_to_the_hard_one(activate):
    """systemd starts services with a soft limit of 1024: greeterd raises it to the hard limit
    once it has served the client that started it, so MAX_CONNECTIONS fit."""
    daemon = activate(wrapper=("prlimit", "--nofile=1024:4096", "--"))
    assert greet(daemon.path) == HELLO
    wait_for(lambda: soft_fd_limit(daemon.process.pid) == 4096, what="the soft limit raised")


#: An LD_PRELOAD library whose setrlimit() (setrlimit64() with large-file support) fails with
#: EPERM, as under a seccomp filter that forbids it: Python's resource module then raises
#: ValueError, not OSError.
REFUSE_SETRLIMIT = """
#include <errno.h>
static int refuse(void) { errno = EPERM; return -1; }
int setrlimit(int resource, const void *limit) { (void)resource; (void)limit; return refuse(); }
int setrlimit64(int resource, const void *limit) { (void)resource; (void)limit; return refuse(); }
"""


def test_a_soft_fd_limit_greeterd_may_not_raise_is_kept_and_said(activate, tmp_path):
    """Where setrlimit() is refused, greeterd keeps greeting with the limit it has and logs
    why once, instead of dying after its first greeting."""
    require_tool("gcc", "apt-get install gcc")
    source = tmp_path / "refuse.c"
    source.write_text(REFUSE_SETRLIMIT)
    library = tmp_path / "refuse.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    daemon = activate(
        wrapper=("prlimit", "--nofile=1024:4096", "--"),
        launcher=("env", f"LD_PRELOAD={library}"),  # systemd-socket-activate passes no env
    )
    for _ in range(3):
        assert greet(daemon.path) == HELLO
    daemon.wait_for_log("keeping 1024 open files at most: cannot raise the limit")
    assert soft_fd_limit(daemon.process.pid) == 1024
    assert "Traceback" not in daemon.log


@pytest.mark.parametrize(
    ("flags", "greet_on"),
    [((), greet_over_a_line), (("--fdname=varlink",), greet_over_varlink)],
    ids=["line protocol", "Varlink"],
)
def test_out_of_file_descriptors_backs_off_logs_once_and_recovers(activate, flags, greet_on):
    """With RLIMIT_NOFILE at 64 and 100 clients held open, accept() fails with EMFILE:
    greeterd logs it once, does not spin, and greets again as soon as fds are free. A socket
    whose clients speak Varlink shares the accept loop, so it bends the same way."""
    daemon = activate(wrapper=("prlimit", "--nofile=64:64", "--"), flags=flags)
    with connect(daemon.path) as first:
        assert greet_on(first) == b"Hello, Ada\n"
    pid = daemon.process.pid
    held = [connect(daemon.path, timeout=30) for _ in range(100)]
    try:
        daemon.wait_for_log("accept() failed: Too many open files")
        cpu_before = cpu_seconds(pid)
        time.sleep(2)
        spent = cpu_seconds(pid) - cpu_before
        print(f"EMFILE: {spent:.2f} s of CPU in 2 s while out of fds")
        assert spent < 0.2, f"{spent:.2f} s of CPU in 2 s: a busy loop"
        assert daemon.log.count("accept() failed") == 1
        waiting = connect(daemon.path)  # queued in the backlog behind the held clients
    finally:
        for sock in held:
            sock.close()
    with waiting:
        assert greet_on(waiting) == b"Hello, Ada\n"
    daemon.wait_for_log("accepting again after")


def test_clients_timed_out_while_out_of_fds_are_refused_and_greeterd_lives_on(activate):
    """With RLIMIT_NOFILE at 64 and 100 silent clients, the ones greeterd accepted reach their
    read deadline while it has no fd to spare: each gets the timeout line (the refusal's log
    folding was loaded after the first greeting, so refusing opens no file) and greeterd goes on
    greeting once they leave."""
    daemon = activate(wrapper=("prlimit", "--nofile=64:64", "--"))
    assert greet(daemon.path) == HELLO
    held = [connect(daemon.path, timeout=30) for _ in range(100)]
    try:
        daemon.wait_for_log("accept() failed: Too many open files")
        timed_out = [read_reply(sock) for sock in held[:40]]  # accepted before the fds ran out
        assert set(timed_out) == {protocol.format_error(protocol.TIMED_OUT)}
        assert daemon.process.poll() is None, f"greeterd ended:\n{daemon.log}"
    finally:
        for sock in held:
            sock.close()
    assert greet(daemon.path) == HELLO
    assert "Traceback" not in daemon.log
