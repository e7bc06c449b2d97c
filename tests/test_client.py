"""greeter-client: input, every failure's message and exit status, and the prompt on a real pty."""

import contextlib
import os
import pty
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import greeterd
from greeterd import cli, client, protocol
from tests.support import GREETER_CLIENT, proc_number, wait_for


class ScriptedServer:
    """A listening socket whose one client gets ``reply`` (None: never answered)."""

    def __init__(self, path: Path, reply: bytes | None) -> None:
        self.path = path
        self.reply = reply
        self.received = b""
        self.closing = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(2)
            try:
                self.received = conn.recv(4096)
                if self.reply is None:
                    self.closing.wait(10)
                else:
                    conn.sendall(self.reply)
            except OSError:
                pass

    def close(self) -> None:
        self.closing.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def scripted(sock_dir):
    servers: list[ScriptedServer] = []

    def start(reply: bytes | None) -> ScriptedServer:
        server = ScriptedServer(sock_dir / f"s{len(servers)}.sock", reply)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = client.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_name_option_is_sent_and_the_greeting_printed(scripted, capsys):
    """--name skips the prompt; the reply line is printed; exit 0."""
    server = scripted(b"Hello, Zo\xc3\xab\n")
    status, out, _ = run(capsys, "--socket", str(server.path), "--name", "Zoë")
    assert (status, out) == (client.EX_OK, "Hello, Zoë\n")
    server.thread.join(5)
    assert server.received == "Zoë\n".encode()


def test_socket_defaults_to_greeter_socket_variable(scripted, capsys):
    """Without --socket, $GREETER_SOCKET names the socket."""
    server = scripted(b"Hello, Ada\n")
    status = client.main(["--name", "Ada"], {"GREETER_SOCKET": str(server.path)})
    assert (status, capsys.readouterr().out) == (client.EX_OK, "Hello, Ada\n")


def test_the_socket_option_comes_before_every_default(scripted, sock_dir, capsys):
    """--socket wins over $GREETER_SOCKET and over a user's own socket that exists."""
    server = scripted(b"Hello, Ada\n")
    (sock_dir / client.USER_SOCKET).touch()
    environ = {"GREETER_SOCKET": "/nonexistent", "XDG_RUNTIME_DIR": str(sock_dir)}
    status = client.main(["--socket", str(server.path), "--name", "Ada"], environ)
    assert (status, capsys.readouterr().out) == (client.EX_OK, "Hello, Ada\n")


def test_the_greeter_socket_variable_comes_before_the_users_own(sock_dir):
    """$GREETER_SOCKET is taken even when $XDG_RUNTIME_DIR/greeter.sock exists."""
    (sock_dir / client.USER_SOCKET).touch()
    environ = {"GREETER_SOCKET": "/elsewhere.sock", "XDG_RUNTIME_DIR": str(sock_dir)}
    assert client.default_socket(environ) == "/elsewhere.sock"


def test_the_users_own_socket_comes_before_the_systems(sock_dir):
    """With a greeter.sock in $XDG_RUNTIME_DIR (systemctl --user start greeter.socket), the
    client uses it rather than /run/greeter.sock."""
    (sock_dir / client.USER_SOCKET).touch()
    assert client.default_socket({"XDG_RUNTIME_DIR": str(sock_dir)}) == str(
        sock_dir / client.USER_SOCKET
    )


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="no XDG_RUNTIME_DIR"),
        pytest.param({"XDG_RUNTIME_DIR": ""}, id="empty XDG_RUNTIME_DIR"),
        pytest.param({"XDG_RUNTIME_DIR": "run/user/1000"}, id="relative XDG_RUNTIME_DIR"),
        pytest.param({"GREETER_SOCKET": ""}, id="empty GREETER_SOCKET"),
    ],
)
def test_without_a_users_own_socket_the_systems_is_used(environ):
    """No usable $GREETER_SOCKET and no user socket: /run/greeter.sock."""
    assert client.default_socket(environ) == protocol.DEFAULT_SOCKET


def test_a_runtime_directory_without_a_greeter_socket_is_passed_over(sock_dir):
    """$XDG_RUNTIME_DIR is set but the user started no greeter.socket: the system's is used."""
    assert client.default_socket({"XDG_RUNTIME_DIR": str(sock_dir)}) == protocol.DEFAULT_SOCKET


def test_a_missing_socket_says_how_to_start_the_service(sock_dir, capsys):
    """No socket file: EX_NOHOST and the systemctl hint."""
    status, _, err = run(capsys, "--socket", str(sock_dir / "absent.sock"), "--name", "Zoë")
    assert status == client.EX_NOHOST
    assert "does not exist" in err
    assert "systemctl start greeter.socket" in err
    assert "systemctl --user start greeter.socket" in err
    assert "Traceback" not in err


def test_an_empty_socket_path_is_a_usage_error(capsys):
    """--socket '' is a mistake on the command line (it was a connection that broke, 74)."""
    status, _, err = run(capsys, "--socket", "", "--name", "Zoë")
    assert status == cli.EX_USAGE
    assert "--socket: the path is empty" in err


def test_a_socket_nobody_listens_on_is_connection_refused(sock_dir, capsys):
    """A leftover socket file: EX_UNAVAILABLE, and the same hint."""
    path = sock_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))
    status, _, err = run(capsys, "--socket", str(path), "--name", "Zoë")
    assert status == client.EX_UNAVAILABLE
    assert "connection refused" in err
    assert "systemctl start greeter.socket" in err


def test_a_server_that_never_answers_times_out(scripted, capsys):
    """--timeout bounds the whole exchange: EX_TEMPFAIL."""
    server = scripted(None)
    started = time.monotonic()
    status, _, err = run(capsys, "--socket", str(server.path), "--name", "Zoë", "--timeout", "0.3")
    assert status == client.EX_TEMPFAIL
    assert "timed out after 0.3s" in err
    assert time.monotonic() - started < 2


@contextlib.contextmanager
def full_backlog(path: Path) -> Iterator[socket.socket]:
    """A listener whose backlog is full: listen(0) holds one connection, and one is there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(0)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as filler:
            filler.setblocking(False)
            filler.connect(str(path))
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.setblocking(False)
                with pytest.raises(BlockingIOError):
                    probe.connect(str(path))  # the backlog is full: the test holds
            yield listener


def test_a_full_backlog_is_waited_for_until_the_server_accepts(sock_dir, capsys):
    """A busy server's clients wait in its backlog: the client waits for room (it used to
    fail at once with EAGAIN, exit 74) and is served once the server accepts again."""
    path = sock_dir / "busy.sock"
    with full_backlog(path) as listener:

        def accept_later() -> None:
            time.sleep(0.5)
            listener.settimeout(5)  # a client that gave up must not leave this thread behind
            listener.accept()[0].close()  # the filler: room for the client
            conn, _ = listener.accept()
            with conn:
                conn.recv(100)
                conn.sendall("Hello, Zoë\n".encode())

        server = threading.Thread(target=accept_later, daemon=True)
        server.start()
        started = time.monotonic()
        status, out, err = run(capsys, "--socket", str(path), "--name", "Zoë", "--timeout", "5")
        server.join(5)
    assert (status, out) == (client.EX_OK, "Hello, Zoë\n"), err
    assert time.monotonic() - started >= 0.4


def test_a_stop_and_continue_while_waiting_for_room_changes_nothing(sock_dir):
    """Ctrl-Z and fg while the client waits in connect() for a full backlog: it goes on
    waiting and is served (CPython takes the interrupted connect() for a connection made;
    getpeername() tells it apart)."""
    path = sock_dir / "busy.sock"
    with full_backlog(path) as listener:
        waiting = client_waiting_for_room(path)
        waiting.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        waiting.send_signal(signal.SIGCONT)
        time.sleep(0.3)
        listener.settimeout(5)
        listener.accept()[0].close()  # the filler: room for the client
        conn, _ = listener.accept()
        with conn:
            conn.recv(100)
            conn.sendall("Hello, Zoë\n".encode())
        out, err = waiting.communicate(timeout=10)
    assert (waiting.returncode, out) == (client.EX_OK, "Hello, Zoë\n".encode()), err


def client_waiting_for_room(path: Path) -> subprocess.Popen[bytes]:
    """greeter-client started for a full backlog at ``path``, once it sleeps in connect(), in
    the kernel's queue of the listener (unix_wait_for_peer)."""
    waiting = subprocess.Popen(
        [GREETER_CLIENT, "--socket", str(path), "--name", "Zoë", "--timeout", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for_wchan(waiting.pid, {"unix_wait_for_peer"})
    return waiting


def wait_for_wchan(pid: int, functions: set[str], timeout: float = 10.0) -> None:
    """Wait until process ``pid`` sleeps in one of these kernel functions."""
    wait_for(
        lambda: Path(f"/proc/{pid}/wchan").read_text(),
        timeout,
        0.005,
        f"process {pid} to sleep in {functions}",
        until=lambda wchan: wchan in functions,
    )


def test_in_a_full_backlog_the_client_waits_in_the_kernels_queue(sock_dir):
    """The client waits its turn as a blocking connect() does: asleep in the listener's queue
    (unix_wait_for_peer) at every look over half a second, never between tries of its own,
    so the kernel wakes it the moment the server accepts; it is then connected within a
    moment, not at its next try."""
    path = sock_dir / "busy.sock"
    with full_backlog(path) as listener:
        waiting = client_waiting_for_room(path)
        seen = set()
        for _ in range(50):
            seen.add(Path(f"/proc/{waiting.pid}/wchan").read_text())
            time.sleep(0.01)
        listener.settimeout(5)
        listener.accept()[0].close()  # the filler: room for the client
        room = time.monotonic()
        conn, _ = listener.accept()
        connected_after = time.monotonic() - room
        with conn:
            conn.recv(100)
            conn.sendall("Hello, Zoë\n".encode())
        out, err = waiting.communicate(timeout=10)
    assert seen == {"unix_wait_for_peer"}, f"it slept elsewhere: {seen}"
    assert (waiting.returncode, out) == (client.EX_OK, "Hello, Zoë\n".encode()), err
    assert connected_after < 0.5, f"connected {connected_after:.3f} s after room appeared"


def test_turned_away_for_its_users_share_is_a_temporary_failure(scripted, capsys):
    """greeterd's 'too many clients of this user waiting' is not about the name: EX_TEMPFAIL
    (try again later) with the reason, not EX_PROTOCOL."""
    server = scripted(protocol.format_error(protocol.TOO_MANY_WAITING))
    status, _, err = run(capsys, "--socket", str(server.path), "--name", "Zoë")
    assert status == client.EX_TEMPFAIL
    assert f"turned the client away: '{protocol.TOO_MANY_WAITING}'; try again" in err


def test_a_backlog_that_stays_full_times_out(sock_dir, capsys):
    """Room never comes: after --timeout the client gives up with EX_TEMPFAIL."""
    path = sock_dir / "busy.sock"
    with full_backlog(path):
        started = time.monotonic()
        status, _, err = run(capsys, "--socket", str(path), "--name", "Zoë", "--timeout", "0.5")
        waited = time.monotonic() - started
    assert status == client.EX_TEMPFAIL, err
    assert "timed out after 0.5s" in err
    assert 0.4 <= waited < 3


def test_an_error_line_from_the_server_is_reported(scripted, capsys):
    """The server's refusal: EX_PROTOCOL and its reason."""
    server = scripted(b"error: name longer than 1024 bytes\n")
    status, _, err = run(capsys, "--socket", str(server.path), "--name", "Zoë")
    assert status == client.EX_PROTOCOL
    assert "the server refused the name: 'name longer than 1024 bytes'" in err


@pytest.mark.parametrize("reply", [b"Hello, \x1b]0;owned\x07\n", b"garbage\n", b"Hello, half"])
def test_an_unreadable_reply_is_refused_without_printing_it_raw(scripted, capsys, reply):
    """Nothing the server sends reaches the terminal unescaped: EX_PROTOCOL."""
    server = scripted(reply)
    status, out, err = run(capsys, "--socket", str(server.path), "--name", "Zoë")
    assert status == client.EX_PROTOCOL
    assert out == ""
    assert "\x1b" not in err
    assert "\x07" not in err


def test_a_server_that_closes_without_answering_is_an_io_error(scripted, capsys):
    """EOF before any reply byte: EX_IOERR."""
    server = scripted(b"")
    status, _, err = run(capsys, "--socket", str(server.path), "--name", "Zoë")
    assert status == client.EX_IOERR
    assert "without answering" in err


@pytest.mark.parametrize(
    ("name", "reason"),
    [("", "empty name"), ("a\x1bb", "control character"), ("x" * 2000, "longer than 1024 bytes")],
)
def test_names_the_protocol_refuses_are_never_sent(sock_dir, capsys, name, reason):
    """The client checks first: EX_DATAERR, and it does not even connect."""
    status, _, err = run(capsys, "--socket", str(sock_dir / "unused.sock"), "--name", name)
    assert status == client.EX_DATAERR
    assert reason in err


def test_permission_denied_is_explained(sock_dir):
    """A user without write permission on the socket: EX_NOPERM and a hint, no traceback."""
    path = sock_dir / "private.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen(1)
        os.chmod(path, 0o600)
        os.chmod(sock_dir, 0o755)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child becomes nobody, then runs the client's code
            status = 99
            try:
                os.close(read_end)
                sys.stderr = os.fdopen(write_end, "w")
                if os.getuid() == 0:
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                else:
                    os.chmod(path, 0)
                status = client.main(["--socket", str(path), "--name", "Zoë"])
                sys.stderr.flush()
            finally:
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end) as child_stderr:
            err = child_stderr.read()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == client.EX_NOPERM, err
    assert "permission denied" in err
    assert "group" in err
    assert stat.S_IMODE(os.stat(path).st_mode) in (0o600, 0)


def test_version_and_help_exit_zero(capsys):
    """--version and --help print and exit 0; a bad option exits EX_USAGE."""
    assert run(capsys, "--version")[:2] == (0, f"greeter-client {greeterd.__version__}\n")
    assert "usage: greeter-client" in run(capsys, "--help")[1]
    status, _, err = run(capsys, "--bogus")
    assert status == 64
    assert "unknown argument" in err


class Terminal:
    """greeter-client on a real pseudo-terminal, as a user at a shell would run it."""

    def __init__(
        self,
        *argv: str,
        stdout: str = "the terminal",
        then: str | None = None,
        before: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        """``stdout`` "closed", or a file to write to, takes standard output off the
        terminal (standard input and error stay on it). ``then`` is shell code run on the
        same terminal once the client exits, as the user's shell would run the next command;
        ``before``, shell code run on it first (stty)."""
        self.pid, self.master = pty.fork()
        if self.pid == 0:
            if stdout == "closed":
                os.close(1)
            elif stdout != "the terminal":
                os.dup2(os.open(stdout, os.O_WRONLY | os.O_CREAT, 0o600), 1)
            command = [GREETER_CLIENT, *argv]
            if then is not None or before is not None:
                script = f"{before or ':'}; " + (f'"$0" "$@"; {then}' if then else 'exec "$0" "$@"')
                command = ["/bin/sh", "-c", script, *command]
            os.execve(command[0], command, environ or os.environ)
        self.output = b""

    def read_until(self, text: bytes, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} never appeared; the terminal shows {self.output!r}"
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.master, 1024)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                assert chunk, f"terminal closed before {text!r}; it showed {self.output!r}"
                self.output += chunk
        return self.output

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def exit_status(self, timeout: float = 30.0) -> int:
        """The exit status (minus the signal number if killed); fails if still running."""
        try:
            _, status = wait_for(
                lambda: os.waitpid(self.pid, os.WNOHANG),
                timeout,
                what=f"the client (pid {self.pid}) to exit",
                until=lambda waited: waited[0] != 0,
            )
        except AssertionError:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            message = f"still running after {timeout}s; showed {self.output!r}"
            raise AssertionError(message) from None
        os.close(self.master)
        return os.waitstatus_to_exitcode(status)


def test_the_prompt_asks_for_a_name_on_a_terminal(scripted):
    """On a terminal: 'What is your name? ', the typed name, then the greeting."""
    server = scripted("Hello, Zoë\n".encode())
    terminal = Terminal("--socket", str(server.path))
    terminal.read_until(client.PROMPT.encode())
    terminal.type("Zoë\n".encode())
    assert "Hello, Zoë".encode() in terminal.read_until("Hello, Zoë".encode())
    assert terminal.exit_status() == client.EX_OK


def test_end_of_input_at_the_prompt_is_no_name(sock_dir):
    """Ctrl-D at the prompt: 'no name given', EX_NOINPUT."""
    terminal = Terminal("--socket", str(sock_dir / "unused.sock"))
    terminal.read_until(client.PROMPT.encode())
    terminal.type(b"\x04")
    terminal.read_until(b"no name given")
    assert terminal.exit_status() == client.EX_NOINPUT


def test_on_a_terminal_the_prompt_goes_to_standard_error(scripted, sock_dir):
    """greeter-client > file: the prompt is on the terminal, the file holds the greeting only."""
    server = scripted("Hello, Zoë\n".encode())
    output = sock_dir / "out.txt"
    terminal = Terminal("--socket", str(server.path), stdout=str(output))
    terminal.read_until(client.PROMPT.encode())
    terminal.type("Zoë\n".encode())
    assert terminal.exit_status() == client.EX_OK
    assert output.read_bytes() == "Hello, Zoë\n".encode()


@pytest.mark.parametrize("stdout", ["closed", "/dev/full"])
def test_a_greeting_the_terminal_user_cannot_be_shown_is_one_line_and_74(scripted, stdout):
    """Standard output closed or failing while standard input is a terminal: the name is asked
    for and sent, then the greeting cannot be printed: one line and EX_IOERR (input() raised
    RuntimeError for a closed one, and a failing one passed for unreadable input)."""
    server = scripted("Hello, Zoë\n".encode())
    terminal = Terminal("--socket", str(server.path), stdout=stdout)
    terminal.read_until(client.PROMPT.encode())
    terminal.type("Zoë\n".encode())
    assert b"Traceback" not in terminal.read_until(b"cannot print the greeting")
    assert terminal.exit_status() == client.EX_IOERR


def peak_rss_kib(pid: int) -> int:
    return proc_number(pid, "status", "VmHWM:", 1)


def test_a_line_without_end_on_a_terminal_not_in_line_mode_takes_no_memory(sock_dir):
    """stty -icanon: the terminal passes bytes as they come, so a line has no 4 KiB bound.
    8 MiB typed without a newline leave the client's memory where it was (it read them whole
    before); the line is refused once it ends."""
    terminal = Terminal(
        "--socket", str(sock_dir / "unused.sock"), before="stty -icanon -echo min 1 time 0"
    )
    terminal.read_until(client.PROMPT.encode())
    at_prompt = peak_rss_kib(terminal.pid)
    for _ in range(128):
        terminal.type(b"a" * 65536)
    grown = peak_rss_kib(terminal.pid) - at_prompt
    terminal.type(b"\n")
    terminal.read_until(b"name longer than")
    assert terminal.exit_status() == client.EX_DATAERR
    assert grown < 2048, f"peak RSS grew by {grown} KiB while the line arrived"


def test_end_of_input_in_the_middle_of_a_line_ends_it(sock_dir):
    """Ctrl-D after part of a line (twice: the first ends the read, the second the input):
    the client goes on with what was typed, without waiting for more."""
    terminal = Terminal("--socket", str(sock_dir / "unused.sock"))
    terminal.read_until(client.PROMPT.encode())
    terminal.type(b"abc\x04")
    time.sleep(0.1)
    terminal.type(b"\x04")
    terminal.read_until(b"does not exist")
    assert terminal.exit_status() == client.EX_NOHOST


def test_a_long_line_typed_at_the_prompt_is_read_whole(sock_dir):
    """A line longer than any name is refused, and read to its end: nothing of it is left on
    the terminal for the shell to run once the client exits."""
    terminal = Terminal(
        "--socket", str(sock_dir / "unused.sock"), then='read -r left; echo "[left: $left]"'
    )
    terminal.read_until(client.PROMPT.encode())
    terminal.type(b"a" * 3000 + b"; echo INJECTED\n")
    terminal.read_until(b"name longer than")
    terminal.type(b"nothing\n")  # what the shell reads next: what the user types now
    assert b"[left: nothing]" in terminal.read_until(b"[left: ")
    terminal.exit_status()


LONGEST_NAME = "ë" * (protocol.MAX_NAME_BYTES // 2)  # 1024 bytes in UTF-8


@pytest.mark.parametrize(
    ("encoding", "name", "prompt"),
    [
        ("latin-1", "Zoë", client.PROMPT.encode()),
        ("gb18030", LONGEST_NAME, client.PROMPT.encode()),
        ("utf-16", "Zoë", client.PROMPT.encode("utf-16-le")),
    ],
    ids=["Latin-1", "the longest name in GB18030", "UTF-16: UTF-8 then"],
)
def test_a_name_is_read_in_the_terminals_encoding(scripted, encoding, name, prompt):
    """On a Latin-1 terminal "Zoë" arrives as b"Zo\\xeb": it is sent as UTF-8, not refused.
    The longest name fits however many bytes the terminal's encoding takes for it (GB18030:
    2048). An encoding no terminal has (UTF-16) gives way to UTF-8."""
    server = scripted("Hello, Zoë\n".encode())
    environ = {**os.environ, "PYTHONIOENCODING": encoding}
    terminal = Terminal("--socket", str(server.path), environ=environ)
    terminal.read_until(prompt)
    terminal.type(f"{name}\n".encode("utf-8" if encoding == "utf-16" else encoding))
    assert terminal.exit_status() == client.EX_OK, terminal.output
    assert server.received == f"{name}\n".encode()


@contextlib.contextmanager
def busy_cpus() -> Iterator[None]:
    """This process (and what it starts) on at most two CPUs, each kept busy by a spinning
    process: the scheduler then often preempts a child right after it writes, which
    widens any window between two of its system calls to milliseconds."""
    allowed = os.sched_getaffinity(0)
    cpus = set(sorted(allowed)[:2])
    os.sched_setaffinity(0, cpus)
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in cpus]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
        os.sched_setaffinity(0, allowed)


#: Ctrl-C at the prompt tried this often on busy CPUs. Before the fix a third of the tries
#: hung (measured: 10 of 30), so 20 tries miss the bug with odds of about 1 in 3,000.
CTRL_C_TRIES = 20


def test_ctrl_c_at_the_prompt_ends_the_client_at_once(sock_dir):
    """Ctrl-C typed the moment the prompt appears: the client dies of SIGINT (shells report
    130) with no traceback, and never waits for a line. A Ctrl-C that lands between the
    prompt and the read() used to be noticed only at the next Enter; a busy machine and
    repeated tries make that moment likely."""
    assert 128 + signal.SIGINT == client.EX_INTERRUPTED
    with busy_cpus():
        for _ in range(CTRL_C_TRIES):
            terminal = Terminal("--socket", str(sock_dir / "unused.sock"))
            terminal.read_until(client.PROMPT.encode())
            terminal.type(b"\x03")
            assert terminal.exit_status(timeout=5) == -signal.SIGINT
            assert b"Traceback" not in terminal.output


@pytest.mark.parametrize(
    ("stdin", "status"),
    [(b"Zo\xc3\xab\n", client.EX_OK), (b"", client.EX_NOINPUT), (b"Zo\xff\n", client.EX_DATAERR)],
    ids=["a line", "nothing", "not UTF-8"],
)
def test_without_a_terminal_one_line_is_read_from_stdin(scripted, stdin, status):
    """Piped input: the first line is the name; empty input is no name."""
    server = scripted(b"Hello, Zo\xc3\xab\n")
    done = subprocess.run(
        [GREETER_CLIENT, "--socket", str(server.path)],
        input=stdin,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == status, done.stderr
    if status == client.EX_OK:
        assert done.stdout == "Hello, Zoë\n".encode()
    assert b"Traceback" not in done.stderr


def client_with(redirection: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    """greeter-client ARGS run under a shell redirection of its own (``0<&-``, ``>&-``)."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {redirection}', "sh", GREETER_CLIENT, *args],
        capture_output=True,
        timeout=20,
        check=False,
    )


@pytest.mark.parametrize(
    ("redirection", "message"),
    [("0<&-", b"standard input is closed"), ("0>/dev/null", b"cannot read a name")],
    ids=["closed", "open for writing only"],
)
def test_a_standard_input_without_a_name_to_read_is_no_name(sock_dir, redirection, message):
    """fd 0 closed (sys.stdin is None) or unreadable (EBADF): one line, EX_NOINPUT."""
    done = client_with(redirection, "--socket", str(sock_dir / "x.sock"))
    assert done.returncode == client.EX_NOINPUT, done.stderr
    assert message in done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize(
    "stdout", ["closed", "a pipe nobody reads", "/dev/full"], ids=lambda name: name
)
def test_a_greeting_that_cannot_be_printed_is_one_line_and_74(scripted, stdout):
    """Standard output closed, its reader gone (EPIPE) or a full disk: one line on standard
    error and EX_IOERR, not a traceback."""
    server = scripted("Hello, Zoë\n".encode())
    args = ["--socket", str(server.path), "--name", "Zoë"]
    if stdout == "closed":
        done = client_with(">&-", *args)
    else:
        with contextlib.ExitStack() as stack:
            if stdout == "/dev/full":
                target = stack.enter_context(open("/dev/full", "wb"))
            else:
                read_end, write_end = os.pipe()
                os.close(read_end)
                target = stack.enter_context(os.fdopen(write_end, "wb"))
            done = subprocess.run(
                [GREETER_CLIENT, *args],
                stdout=target,
                stderr=subprocess.PIPE,
                timeout=20,
                check=False,
            )
    assert done.returncode == client.EX_IOERR, done.stderr
    assert b"greeter-client: cannot print the greeting" in done.stderr
    assert b"Traceback" not in done.stderr


def test_with_standard_error_closed_the_exit_status_still_says_what_failed(sock_dir):
    """Nowhere to write the line (fd 2 closed): no AttributeError, the documented status."""
    done = client_with("2>&-", "--socket", str(sock_dir / "missing.sock"), "--name", "Zoë")
    assert done.returncode == client.EX_NOHOST
    assert client_with(">&- 2>&-", "--help").returncode == client.EX_IOERR


def test_help_with_standard_output_closed_is_one_line_and_74():
    """--help with standard output closed: exactly one line on standard error saying so,
    and EX_IOERR (74), not 0 for a help nobody saw and not a traceback."""
    done = client_with(">&-", "--help")
    assert done.returncode == client.EX_IOERR
    assert done.stderr == b"greeter-client: cannot write to standard output: it is closed\n"


def test_protocol_limit_in_help_is_the_constant():
    """The client's --help quotes MAX_NAME_BYTES."""
    assert f"at most {protocol.MAX_NAME_BYTES} bytes" in " ".join(client.COMMAND.help().split())
