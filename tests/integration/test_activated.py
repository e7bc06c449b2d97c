"""greeterd under systemd-socket-activate: sockets, the client, signals, the inherited socket."""

import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from greeterd import protocol
from tests.support import (
    GREETER_CLIENT,
    GREETERD,
    HELLO,
    children,
    command_line,
    connect,
    exchange,
    greet,
    read_reply,
    wait_for,
)


def test_the_first_connection_starts_greeterd_and_is_greeted(activate):
    """The connection that triggers activation is answered by the daemon that it started:
    until then the process is systemd-socket-activate; after it, the same pid runs greeterd."""
    daemon = activate()
    pid = daemon.process.pid
    assert Path(command_line(pid)[0]).name == "systemd-socket-activate"
    assert greet(daemon.path) == HELLO
    assert GREETERD in command_line(pid), command_line(pid)
    assert children(pid) == []
    assert daemon.stop() == 0


def test_greeter_client_greets_from_a_shell(activate):
    """The installed client talks to the activated daemon."""
    daemon = activate()
    done = subprocess.run(
        [GREETER_CLIENT, "--socket", str(daemon.path), "--name", "李小龍"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "Hello, 李小龍\n".encode()), done.stderr


@pytest.mark.parametrize(
    ("request_bytes", "reply"),
    [
        (b"\n", b"error: empty name\n"),
        (b"\xff\n", b"error: invalid UTF-8\n"),
        (b"a\x00b\n", b"error: control character in name\n"),
        (b"\x1b[31mred\n", b"error: control character in name\n"),
        (b"x" * 5000, b"error: name longer than 1024 bytes\n"),
    ],
    ids=["empty", "invalid UTF-8", "NUL", "ESC", "too long"],
)
def test_refused_requests_get_their_error_line_and_the_daemon_keeps_serving(
    activate, request_bytes, reply
):
    """Each bad request gets one error line; the next client is greeted as usual."""
    daemon = activate()
    assert greet(daemon.path) == HELLO
    assert exchange(daemon.path, request_bytes) == reply
    assert greet(daemon.path) == HELLO
    log = daemon.wait_for_log("refused request")
    assert re.search(rf"refused request from pid \d+ uid {os.getuid()}: ", log)
    assert "Traceback" not in log


def test_an_overlong_line_is_cut_off_at_the_limit(activate):
    """The daemon answers after MAX_REQUEST_BYTES, while the client is still sending."""
    daemon = activate()
    greet(daemon.path)
    with connect(daemon.path) as sock:
        sock.sendall(b"x" * protocol.MAX_REQUEST_BYTES)
        assert read_reply(sock) == protocol.format_error(protocol.TOO_LONG)


def test_a_silent_client_does_not_block_others(activate):
    """One connection that sends nothing: 50 others are greeted meanwhile, quickly."""
    daemon = activate()
    greet(daemon.path)
    with connect(daemon.path):
        started = time.monotonic()
        for _ in range(50):
            assert greet(daemon.path) == HELLO
        assert time.monotonic() - started < 2.0


def test_many_concurrent_clients_are_all_greeted(activate):
    """16 threads x 100 greetings: every reply exact."""
    daemon = activate()
    greet(daemon.path)
    failures: list[bytes] = []

    def worker(index: int) -> None:
        for round_ in range(100):
            name = f"client-{index}-{round_}"
            reply = greet(daemon.path, name)
            if reply != f"Hello, {name}\n".encode():
                failures.append(reply)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []


def test_sigterm_drains_in_flight_clients_then_exits_zero(activate):
    """SIGTERM: the half-sent name is still greeted, then greeterd exits 0."""
    daemon = activate()
    greet(daemon.path)
    with connect(daemon.path) as parked:
        parked.send(b"Ad")
        time.sleep(0.2)
        daemon.process.send_signal(signal.SIGTERM)
        daemon.wait_for_log("stopping (SIGTERM)")
        assert daemon.process.poll() is None, "exited with a client in flight"
        parked.send(b"a\n")
        assert read_reply(parked) == b"Hello, Ada\n"
    assert daemon.process.wait(10) == 0


def test_greeterd_never_binds_listens_or_unlinks_the_inherited_socket(activate, sock_dir):
    """Traced from exec to exit: no bind(), listen(), shutdown() or unlink() by greeterd."""
    trace = sock_dir / "trace"
    daemon = activate(
        wrapper=(
            "strace",
            "-f",
            "-qq",
            "-o",
            str(trace),
            "-e",
            "trace=execve,bind,listen,shutdown,unlink,unlinkat",
        )
    )
    greet(daemon.path)
    exchange(daemon.path, b"\n")
    lines = trace.read_text().splitlines()
    exec_at = next(i for i, line in enumerate(lines) if f'execve("{GREETERD}"' in line)
    os.kill(int(lines[exec_at].split()[0]), signal.SIGTERM)  # greeterd, strace's tracee
    assert daemon.process.wait(15) == 0
    lines = trace.read_text().splitlines()
    assert any("listen(" in line for line in lines[:exec_at]), "systemd-socket-activate listens"
    after = [
        line
        for line in lines[exec_at:]
        if re.search(r"\b(bind|listen|shutdown|unlink|unlinkat)\(", line)
    ]
    assert after == []
    assert daemon.path.exists()


def listen_backlog(path: Path) -> int:
    """The listen queue size that ss reports (Send-Q) for the socket at ``path``."""
    output = subprocess.run(["ss", "-xlnH"], capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        fields = line.split()
        if str(path) in fields:
            return int(fields[3])
    raise AssertionError(f"{path} not in ss -xl output:\n{output}")


def test_the_inherited_backlog_is_left_as_systemd_set_it(activate):
    """greeterd does not listen() again (asyncio would silently set 100)."""
    daemon = activate()
    before = listen_backlog(daemon.path)
    assert greet(daemon.path) == HELLO
    assert listen_backlog(daemon.path) == before
    assert before > 100


def tcp_listening(port: int) -> bool:
    listing = ["ss", "-tlnH", f"sport = :{port}"]
    return bool(subprocess.run(listing, capture_output=True, text=True, check=True).stdout)


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_socket_greeterd_cannot_serve_is_refused_at_start():
    """A TCP socket passed by systemd: a named error and EX_CONFIG, not a traceback."""
    port = free_tcp_port()
    process = subprocess.Popen(
        ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", GREETERD],
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: tcp_listening(port), what="the TCP listener")
    with socket.create_connection(("127.0.0.1", port)):
        _, err = process.communicate(timeout=20)
    assert process.returncode == 78, err
    assert "fd 3 (unknown) is a AF_INET socket; greeterd serves AF_UNIX stream" in err
    assert "Traceback" not in err
