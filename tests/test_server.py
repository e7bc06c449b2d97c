"""The server loop, run in a thread on a real listening socket in a temporary directory."""

import array
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from greeterd import folding, log, protocol, varlink, waiting
from greeterd.activation import CONNECTION, DATAGRAM, LISTENER, VARLINK, Endpoint
from greeterd.server import Server
from tests.support import (
    HELLO,
    MemoryOutlet,
    connect,
    error_line,
    exchange,
    greet,
    read_reply,
    varlink_call,
    varlink_replies,
    wait_for,
)


def listener(path: Path, kind: int = socket.SOCK_STREAM) -> Endpoint:
    """A listening stream (or seqpacket) socket at ``path``, as systemd would pass it."""
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.bind(str(path))
    sock.listen(4096)
    sock.setblocking(False)
    return Endpoint(sock, "test", LISTENER)


def datagram_socket(path: Path, *, pass_credentials: bool = True) -> Endpoint:
    """A bound datagram socket at ``path``; activation.adopt() sets SO_PASSCRED on these."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, int(pass_credentials))
    sock.setblocking(False)
    return Endpoint(sock, "datagram", DATAGRAM)


def datagram_client(path: Path) -> socket.socket:
    """A datagram socket bound to an abstract address (to be replied to), sending to ``path``."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    client.settimeout(5)
    client.bind("")
    client.connect(str(path))
    return client


class Running:
    """A Server serving ``endpoints`` in a background thread, with what it logged and
    notified; ``path`` is the first endpoint's socket path."""

    def __init__(self, endpoints: list[Endpoint], **settings: object) -> None:
        self.endpoints = endpoints
        name = endpoints[0].sock.getsockname()
        self.path = Path(name) if isinstance(name, str) and name else None
        self.outlet = MemoryOutlet()
        self.notified: list[str] = []
        self.server = Server(
            endpoints,
            log.Log(log.DEBUG, self.outlet),
            self.notified.append,
            **settings,  # type: ignore[arg-type]
        )
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK)
        self.server.watch_wakeup_fd(self._wake_read)
        self.thread = threading.Thread(target=self.server.run)
        self.thread.start()

    @property
    def log(self) -> str:
        return self.outlet.text

    def sigterm(self) -> None:
        """What signal.set_wakeup_fd does when SIGTERM arrives."""
        os.write(self._wake_write, bytes([signal.SIGTERM]))

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server loop did not return"

    def close(self) -> None:
        if self.thread.is_alive():
            self.sigterm()
            self.join()
        for endpoint in self.endpoints:
            endpoint.sock.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


@pytest.fixture
def serve(sock_dir: Path) -> Iterator[Callable[..., AbstractContextManager[Running]]]:
    """serve(*endpoints, **settings): a Running server, stopped after the test; with no
    endpoints, one stream listener in the test's directory."""
    started: list[Running] = []

    @contextmanager
    def start(*endpoints: Endpoint, **settings: object) -> Iterator[Running]:
        chosen = list(endpoints) or [listener(sock_dir / f"s{len(started)}.sock")]
        running = Running(chosen, **settings)
        started.append(running)
        yield running

    yield start
    for running in started:
        running.close()


def test_a_client_is_greeted(serve):
    """The basic exchange: name in, greeting out, connection closed."""
    with serve() as running:
        assert greet(running.path, "Zoë") == "Hello, Zoë\n".encode()
        # The loop counts the greeting just after closing the connection: stop it first.
        running.sigterm()
        running.join()
    assert running.server.greeted == 1


def test_a_name_sent_byte_by_byte_is_greeted(serve):
    """A slow client is parked in epoll and answered once its newline arrives."""
    with serve() as running, connect(running.path) as sock:
        for byte in "Zoë\n".encode():
            sock.send(bytes([byte]))
            time.sleep(0.01)
        assert read_reply(sock) == "Hello, Zoë\n".encode()


def test_a_silent_client_does_not_delay_others(serve):
    """While one client sends nothing, others are greeted at once."""
    with serve() as running, connect(running.path):
        started = time.monotonic()
        for _ in range(20):
            assert greet(running.path) == "Hello, Zoë\n".encode()
        assert time.monotonic() - started < 1.0


def test_a_silent_client_is_cut_off_at_the_read_deadline(serve):
    """After read_timeout the client gets the timeout error line and a log line names it."""
    with serve(read_timeout=0.2) as running, connect(running.path) as sock:
        started = time.monotonic()
        assert read_reply(sock) == protocol.format_error(protocol.TIMED_OUT)
        assert 0.15 < time.monotonic() - started < 2.0
        wait_for(lambda: "timed out" in running.log, what="the timeout's log line")
    assert f"refused request from pid {os.getpid()} uid {os.getuid()}: timed out" in running.log


def test_refusals_are_logged_with_peer_credentials_and_escaped(serve):
    """One log line per refused request: reason, pid and uid, and the bytes escaped."""
    with serve() as running:
        assert exchange(running.path, b"a\x1b[2Jb\n") == b"error: control character in name\n"
        wait_for(lambda: "refused" in running.log, what="the refusal's log line")
    line = next(line for line in running.log.splitlines() if "refused" in line)
    assert f"pid {os.getpid()} uid {os.getuid()}" in line
    assert "\x1b" not in line
    assert "'a\\x1b[2Jb\\n'" in line


def test_a_flood_of_refusals_is_folded_into_a_summary_that_adds_up(serve):
    """Past SINGLES_PER_KEY refusals of one uid and reason, the rest of the window become one
    summary line, written at the latest when the server stops; every refusal is counted."""
    with serve() as running:
        for _ in range(40):
            assert exchange(running.path, b"\x1b\n") == b"error: control character in name\n"
        running.sigterm()
        running.join()
    refusals = [line for line in running.log.splitlines() if "refused" in line]
    singles = [line for line in refusals if "refused request from" in line]
    (summary,) = [line for line in refusals if "more requests" in line]
    assert len(singles) == folding.SINGLES_PER_KEY
    assert f"uid {os.getuid()}" in summary
    assert "(GREETER_REPEATS=35)" in summary
    assert running.server.refused == 40


def test_past_the_connection_cap_clients_wait_in_the_backlog(serve):
    """With max_connections parked, the next client is not accepted until one leaves."""
    with serve(max_connections=2, read_timeout=0.5) as running:
        first, second = connect(running.path), connect(running.path)
        wait_for(lambda: running.server.waiting == 2, what="two parked clients")
        started = time.monotonic()
        third = greet(running.path)
        waited = time.monotonic() - started
        assert third == "Hello, Zoë\n".encode()
        assert waited > 0.3, "the third client was accepted beyond the cap"
        first.close()
        second.close()


def test_sigterm_drains_clients_in_flight_and_stops_accepting(serve):
    """STOPPING=1, no new accepts, the parked client still greeted, then run() returns."""
    with serve() as running, connect(running.path) as parked:
        parked.send(b"Zo")
        wait_for(lambda: running.server.waiting, what="the parked client")
        running.sigterm()
        wait_for(lambda: any("STOPPING=1" in n for n in running.notified), what="STOPPING=1")
        late = connect(running.path)  # queued in the backlog, never accepted
        parked.send(b"\xc3\xab\n")
        assert read_reply(parked) == "Hello, Zoë\n".encode()
        running.join()
        late.settimeout(0.2)
        with pytest.raises(TimeoutError):
            late.recv(1)
        late.close()
    assert "stopping (SIGTERM)" in running.log


def test_status_reports_greetings(serve):
    """STATUS= tells systemd how many clients were greeted and refused."""
    with serve() as running:
        greet(running.path)
        exchange(running.path, b"\n")
        wait_for(
            lambda: "STATUS=1 greeted, 1 refused, 0 waiting" in running.notified,
            what="a STATUS= update",
        )


def test_exit_on_idle_stops_after_the_idle_time(serve):
    """With nothing to do for exit_idle_time, the loop sends STOPPING=1 and returns."""
    with serve(exit_idle_time=0.3) as running:
        greet(running.path)
        started = time.monotonic()
        running.join()
        assert 0.2 < time.monotonic() - started < 3.0
    assert any(n.startswith("STOPPING=1") for n in running.notified)
    assert "idle for 0.3s" in running.log


def test_exit_on_idle_waits_for_parked_clients(serve):
    """A client still sending its name keeps the server up past the idle time."""
    with serve(exit_idle_time=0.2) as running, connect(running.path) as slow:
        time.sleep(0.5)
        assert running.thread.is_alive()
        slow.send(b"Ada\n")
        assert read_reply(slow) == b"Hello, Ada\n"
        running.join()


def test_the_loop_sends_watchdog_pings(serve):
    """WATCHDOG=1 reaches notify from the loop, again and again (test_lifecycle.py proves
    the times exactly)."""
    with serve(watchdog_interval=0.05) as running:
        wait_for(lambda: running.notified.count("WATCHDOG=1") >= 3, what="three pings")


def test_a_client_that_leaves_without_a_word_is_not_a_refusal(serve):
    """Connect-and-close is counted as lost, not logged as a refused request."""
    with serve() as running:
        connect(running.path).close()
        wait_for(lambda: running.server.lost == 1, what="the lost client")
    assert running.server.refused == 0
    assert "refused" not in running.log


def test_a_handed_over_connection_is_served_and_then_the_loop_returns(serve):
    """Accept=yes: one connected socket, one greeting, and run() returns by itself."""
    ours, client = socket.socketpair()
    ours.setblocking(False)
    with serve(Endpoint(ours, "connection", CONNECTION)) as running, client:
        client.sendall(b"Ada\n")
        assert read_reply(client) == b"Hello, Ada\n"
        running.join(5)
    assert running.server.greeted == 1


def test_a_silent_handed_over_connection_times_out_and_the_loop_returns(serve):
    """Accept=yes and a client that says nothing: the timeout line, then run() returns."""
    ours, client = socket.socketpair()
    ours.setblocking(False)
    with serve(Endpoint(ours, "connection", CONNECTION), read_timeout=0.2) as running, client:
        assert read_reply(client) == protocol.format_error(protocol.TIMED_OUT)
        running.join(5)


def test_seqpacket_clients_send_one_message_and_get_one_reply(serve, sock_dir):
    """On a seqpacket listener a message is a name (newline optional), the reply a message."""
    with serve(listener(sock_dir / "q", socket.SOCK_SEQPACKET)):
        for message, reply in [
            (b"Zo\xc3\xab", HELLO),
            (b"Ada\n", b"Hello, Ada\n"),
            (b"a\nb", b"error: control character in name\n"),
        ]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as client:
                client.settimeout(5)
                client.connect(str(sock_dir / "q"))
                client.send(message)
                assert client.recv(4096) == reply


def test_datagrams_are_answered_to_their_sender_with_credentials_logged(serve, sock_dir):
    """A datagram socket: each message gets one reply at the sender's address; refusals are
    logged with the sender's pid and uid from SCM_CREDENTIALS."""
    with (
        serve(datagram_socket(sock_dir / "d")) as running,
        datagram_client(sock_dir / "d") as client,
    ):
        client.send(b"Zo\xc3\xab\n")
        assert client.recv(4096) == HELLO
        client.send(b"\x1b[2J")
        assert client.recv(4096) == b"error: control character in name\n"
        wait_for(lambda: "refused" in running.log, what="the refusal's log line")
    assert f"pid {os.getpid()} uid {os.getuid()}" in running.log


def test_datagrams_are_answered_while_stream_clients_are_at_the_cap(serve, sock_dir):
    """A datagram takes no connection and no fd: with max_connections stream clients parked
    (the gate closed, the next stream client waiting in the backlog), datagrams are answered
    at once all the same."""
    stream = listener(sock_dir / "s")
    with (
        serve(stream, datagram_socket(sock_dir / "d"), max_connections=1) as running,
        connect(sock_dir / "s"),
        datagram_client(sock_dir / "d") as client,
    ):
        wait_for(lambda: running.server.waiting == 1, what="the silent client parked")
        with connect(sock_dir / "s") as queued:
            queued.sendall(b"Ada\n")
            queued.settimeout(0.3)
            with pytest.raises(TimeoutError):
                queued.recv(64)  # not accepted: it waits in the backlog
            client.settimeout(1)  # well inside the silent client's 5 s
            client.send(b"Dee")
            assert client.recv(4096) == b"Hello, Dee\n"


def test_clients_that_leave_early_do_not_pile_up_until_their_deadline(serve, open_files):
    """3,000 clients connect, wait to be parked and hang up while one silent client stays:
    the deadline queue is compacted, never holding more than twice the live clients plus
    DEADLINE_SLACK finished ones, and the silent client still gets its timeout line."""
    open_files(2 * 1001)  # both ends of each connection live in this process
    with serve() as running, connect(running.path) as silent:
        wait_for(lambda: running.server.waiting == 1, what="the silent client parked")
        for _ in range(3):
            clients = [connect(running.path) for _ in range(1000)]
            wait_for(lambda: running.server.waiting == 1001, what="1000 more parked")
            for client in clients:
                client.close()
            wait_for(lambda: running.server.waiting == 1, what="all but the silent one gone")
        assert running.server.waiting_clients.queued() <= 2 * 1 + waiting.DEADLINE_SLACK
        assert greet(running.path) == HELLO
        silent.settimeout(10)
        assert read_reply(silent) == protocol.format_error(protocol.TIMED_OUT)


@pytest.mark.parametrize("pass_credentials", [True, False], ids=["SO_PASSCRED", "no SO_PASSCRED"])
def test_fds_passed_with_datagrams_are_closed_not_kept(serve, sock_dir, pass_credentials):
    """A client that sends fds (SCM_RIGHTS) with each datagram is answered, and none of them
    stays open in the server, whether or not the socket asks for credentials (without
    SO_PASSCRED the kernel installs every passed fd that fits the ancillary buffer)."""
    passed = [os.open(os.devnull, os.O_RDONLY) for _ in range(3)]
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", passed).tobytes())]
    endpoint = datagram_socket(sock_dir / "d", pass_credentials=pass_credentials)
    try:
        with serve(endpoint), datagram_client(sock_dir / "d") as client:
            baseline = len(os.listdir("/proc/self/fd"))
            for _ in range(50):
                client.sendmsg([b"Ada"], rights)
                assert client.recv(4096) == b"Hello, Ada\n"
            assert len(os.listdir("/proc/self/fd")) == baseline, "passed fds were kept"
    finally:
        for fd in passed:
            os.close(fd)


# -- Varlink ----------------------------------------------------------------------------------


def varlink_listener(path: Path) -> Endpoint:
    """A listening stream socket named "varlink", as greeter-varlink.socket passes it."""
    endpoint = listener(path)
    return Endpoint(endpoint.sock, "varlink", VARLINK)


GREET = "io.greeterd.Greeter.Greet"


def test_a_varlink_connection_carries_many_calls(serve, sock_dir):
    """Pipelined calls in one write and a later call on the same connection are all answered,
    in order; a refused name is InvalidName and logged with the peer's credentials."""
    with serve(varlink_listener(sock_dir / "v.sock")) as running, connect(sock_dir / "v.sock") as s:
        s.sendall(varlink_call(GREET, name="A") + varlink_call(GREET, name="a\x1bb"))
        first = varlink_replies(s, 2)
        s.sendall(varlink_call(GREET, name="B"))
        (second,) = varlink_replies(s, 1)
        running.sigterm()
        running.join()
    assert first == [
        {"parameters": {"greeting": "Hello, A"}},
        {
            "error": "io.greeterd.Greeter.InvalidName",
            "parameters": {"reason": "control character in name"},
        },
    ]
    assert second == {"parameters": {"greeting": "Hello, B"}}
    assert running.server.greeted == 2
    assert (
        f"refused request from pid {os.getpid()} uid {os.getuid()}: control character"
        in running.log
    )


def test_an_idle_varlink_connection_is_closed_and_frees_its_place(serve, sock_dir):
    """Silent past the idle timeout, a Varlink connection is closed without a reply."""
    with serve(varlink_listener(sock_dir / "v.sock"), varlink_idle_timeout=0.3) as running:
        with connect(sock_dir / "v.sock") as s:
            s.sendall(varlink_call(GREET, name="A"))
            varlink_replies(s, 1)
            started = time.monotonic()
            assert s.recv(100) == b""
            assert 0.2 < time.monotonic() - started < 3
        wait_for(lambda: running.server.waiting == 0, what="the place to be free")


@pytest.mark.parametrize("calls_first", [0, 1], ids=["before its first call", "after a call"])
def test_a_varlink_call_sent_a_byte_at_a_time_is_cut_off_at_the_deadline(
    serve, sock_dir, calls_first
):
    """Bounded time per client: bytes that complete no call do not extend a connection's
    deadline (the first call's, or the one its last whole call set), so a client that drips
    a call is closed at it instead of holding its place for as long as it drips."""
    timeouts = {"read_timeout": 0.5, "varlink_idle_timeout": 0.5}
    with (
        serve(varlink_listener(sock_dir / "v.sock"), **timeouts),
        connect(sock_dir / "v.sock") as s,
    ):
        if calls_first:
            s.sendall(varlink_call(GREET, name="A"))
            varlink_replies(s, 1)
        closed_after = dribble_until_closed(s, varlink_call(GREET, name="B")[:-1], every=0.1)
    assert closed_after is not None, "the connection outlived every byte of the call"
    assert closed_after < 2


def dribble_until_closed(s: socket.socket, data: bytes, every: float) -> float | None:
    """Send ``data`` a byte every ``every`` seconds; return the seconds until the server
    closed the connection, or None if it never did."""
    started = time.monotonic()
    s.settimeout(every)
    for byte in data:
        try:
            if s.recv(100) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:  # closed with our bytes unread
            return time.monotonic() - started
        with contextlib.suppress(OSError):
            s.send(bytes([byte]))
    return None


def test_sigterm_ends_idle_varlink_connections_at_once(serve, sock_dir):
    """A drain does not wait for Varlink clients between calls: they are closed."""
    with serve(varlink_listener(sock_dir / "v.sock")) as running, connect(sock_dir / "v.sock") as s:
        s.sendall(varlink_call(GREET, name="A"))
        varlink_replies(s, 1)
        started = time.monotonic()
        running.sigterm()
        running.join()
        assert time.monotonic() - started < 2
        assert s.recv(100) == b""


def test_a_varlink_message_past_the_cap_closes_the_connection(serve, sock_dir):
    """No NUL within MAX_MESSAGE_BYTES: the connection is closed, the server goes on."""
    with serve(varlink_listener(sock_dir / "v.sock")) as running:
        with connect(sock_dir / "v.sock") as s:
            with contextlib.suppress(OSError):
                s.sendall(b"x" * (varlink.MAX_MESSAGE_BYTES + 10))
            assert read_reply(s) == b""
        with connect(sock_dir / "v.sock") as s:
            s.sendall(varlink_call(GREET, name="again"))
            assert varlink_replies(s, 1) == [{"parameters": {"greeting": "Hello, again"}}]
        assert running.server.waiting <= 1


def test_varlink_connections_count_against_the_client_cap(serve, sock_dir):
    """With max_connections=1 held by a Varlink client, a line client waits in the backlog."""
    line = listener(sock_dir / "l.sock")
    with serve(varlink_listener(sock_dir / "v.sock"), line, max_connections=1) as running:
        with connect(sock_dir / "v.sock") as held:
            held.sendall(varlink_call(GREET, name="A"))
            varlink_replies(held, 1)
            waiter = connect(sock_dir / "l.sock")
            waiter.sendall(b"Zo\xc3\xab\n")
            waiter.settimeout(0.3)
            with pytest.raises(TimeoutError):
                waiter.recv(100)
        waiter.settimeout(5)
        assert read_reply(waiter) == HELLO
        waiter.close()
        # The loop counts a greeting just after closing the connection: stop it first.
        running.sigterm()
        running.join()
    assert running.server.greeted == 2


def test_a_long_varlink_deadline_does_not_delay_a_shorter_one_set_after_it(serve, sock_dir):
    """Deadlines of two lengths share one server: a silent line client that connects after a
    Varlink call renewed its connection's longer idle deadline is still cut off at its own
    read deadline, not at the Varlink one."""
    with (
        serve(
            listener(sock_dir / "s.sock"),
            varlink_listener(sock_dir / "v.sock"),
            read_timeout=0.3,
            varlink_idle_timeout=5,
        ),
        connect(sock_dir / "v.sock") as session,
    ):
        session.sendall(varlink_call(GREET, name="A"))
        varlink_replies(session, 1)  # its next deadline: 5 s from now
        with connect(sock_dir / "s.sock") as silent:
            started = time.monotonic()
            silent.settimeout(10)
            assert silent.recv(100) == error_line(protocol.TIMED_OUT)
            waited = time.monotonic() - started
    assert waited < 2, f"the line client waited {waited:.1f} s, behind the Varlink deadline"
