"""``greeter-client``: ask for a name, send it to greeterd, print the greeting.

Every failure is one line on standard error and a distinct exit status (sysexits.h), never a
traceback: the user learns what went wrong and what to try, a script learns which case it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import struct
import sys
import time

from greeterd import __version__, cli, protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

EX_OK = 0
EX_DATAERR = 65  # the name breaks the protocol; nothing was sent
EX_NOINPUT = 66  # no name: end of input at the prompt or on standard input, or no stdin
EX_NOHOST = 68  # the socket path does not exist
EX_UNAVAILABLE = 69  # nothing listens on the socket
EX_IOERR = cli.EX_IOERR  # the connection broke, or the greeting could not be printed
EX_TEMPFAIL = 75  # timed out, or turned away: too many clients of this user waiting
EX_PROTOCOL = 76  # the server refused the name, or answered something unreadable
EX_NOPERM = 77  # not allowed to connect to the socket
EX_INTERRUPTED = 130  # Ctrl-C: killed by SIGINT, which shells report as 128 + 2

#: Seconds allowed for the whole exchange by default. A cold start of greeterd takes tens of
#: milliseconds; the margin covers a busy machine and a queue of clients at activation.
DEFAULT_TIMEOUT = 10.0

#: --socket-type values and what they mean on the wire (docs/protocols.md).
SOCKET_TYPES = {
    "stream": socket.SOCK_STREAM,  # a line, then the server closes
    "seqpacket": socket.SOCK_SEQPACKET,  # one message each way
    "datagram": socket.SOCK_DGRAM,  # one datagram each way, to our own (abstract) address
}

PROMPT = "What is your name? "
START_HINT = (
    "start it with: systemctl start greeter.socket "
    "(or your own: systemctl --user start greeter.socket)"
)

#: A user's own greeter.socket listens on %t/greeter.sock: $XDG_RUNTIME_DIR/greeter.sock.
USER_SOCKET = "greeter.sock"


class Settings:
    """What the command line sets; defaults as in --help."""

    name: str | None = None
    socket = protocol.DEFAULT_SOCKET
    socket_type = "stream"
    timeout = DEFAULT_TIMEOUT


COMMAND = cli.Command(
    "greeter-client",
    __version__,
    "Ask for your name and have greeterd greet you.",
    [
        cli.Option("--name", "the name to send, instead of asking for it", metavar="NAME"),
        cli.Option(
            "--socket",
            "greeterd's socket; default $GREETER_SOCKET, else "
            f"$XDG_RUNTIME_DIR/{USER_SOCKET} if it exists (your own, from systemctl --user "
            f"start greeter.socket), else {protocol.DEFAULT_SOCKET}",
            metavar="PATH",
            convert=cli.path,
        ),
        cli.Option(
            "--socket-type",
            "stream (default), seqpacket or datagram: the kind of socket the server offers "
            "at --socket",
            metavar="TYPE",
            convert=cli.choice(*SOCKET_TYPES),
        ),
        cli.Option(
            "--timeout",
            f"give up after this long; default {DEFAULT_TIMEOUT:g}",
            metavar="SECONDS",
            convert=cli.seconds,
        ),
    ],
    description=(
        "On a terminal it asks 'What is your name?'; otherwise it reads one line from "
        "standard input. It prints the server's reply, 'Hello, NAME'. Names are UTF-8, at "
        f"most {protocol.MAX_NAME_BYTES} bytes, without control characters."
    ),
    exit_statuses=[
        (EX_OK, "greeted"),
        (cli.EX_USAGE, "bad command line"),
        (EX_DATAERR, "the name cannot be sent (empty, too long, control characters, not UTF-8)"),
        (EX_NOINPUT, "no name given (end of input; standard input closed or unreadable)"),
        (EX_NOHOST, "the socket does not exist (is greeter.socket started?)"),
        (EX_UNAVAILABLE, "connection refused: nothing listens on the socket"),
        (EX_IOERR, "the connection broke before an answer, or standard output failed"),
        (
            EX_TEMPFAIL,
            "timed out, or greeterd turned the client away because too many clients of the "
            "same user were waiting for it (try again later)",
        ),
        (EX_PROTOCOL, "the server refused the name or answered something unreadable"),
        (EX_NOPERM, "permission denied on the socket"),
        (EX_INTERRUPTED, "interrupted: Ctrl-C kills the client (SIGINT)"),
    ],
)


class Failure(Exception):
    """Why the client gives up: the one line to print and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    settings = Settings()
    settings.socket = default_socket(os.environ if environ is None else environ)
    status = COMMAND.parse_or_exit(argv, settings)
    if status is not None:
        return status
    try:
        with _interrupt_kills():
            request = _request(_read_name(settings.name))
            greeting = exchange(settings.socket, request, settings.timeout, settings.socket_type)
            _print(greeting)
    except Failure as failure:
        cli.write_err(f"greeter-client: {failure}")
        return failure.status
    return EX_OK


def _print(greeting: str) -> None:
    if sys.stdout is not None:
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    problem = cli.write_out(greeting + "\n")
    if problem is not None:
        raise Failure(f"cannot print the greeting: {problem}", EX_IOERR)


def default_socket(environ: Mapping[str, str]) -> str:
    """The socket to use without --socket, in the order --help states: $GREETER_SOCKET; the
    user's own instance, $XDG_RUNTIME_DIR/greeter.sock, if it exists; the system's.

    The user's own comes before the system's when both run, as podman and gpg-agent clients
    find a user's socket first: whoever started one for themselves means to use it.
    """
    if chosen := environ.get("GREETER_SOCKET"):
        return chosen
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/"):  # a relative one is not a runtime directory: ignored
        own = os.path.join(runtime, USER_SOCKET)
        if os.path.exists(own):
            return own
    return protocol.DEFAULT_SOCKET


@contextlib.contextmanager
def _interrupt_kills() -> Iterator[None]:
    """Let Ctrl-C kill the client the default way, as it kills any Unix tool.

    Python's own SIGINT handler only raises KeyboardInterrupt between bytecodes: a Ctrl-C
    that lands after input() has shown the prompt but before it blocks in read() is noticed
    only once a line arrives, so the client hangs (seen on a busy machine, about 1 in 3).
    The default action ends the process at once, wherever it is; shells report status 130
    (128 + SIGINT), and a script's loop around the client stops as it should. There is
    nothing to clean up: the kernel closes the socket.
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _read_name(given: str | None) -> str:
    """The name from --name, the prompt on a terminal, or one line of standard input."""
    if given is not None:
        return given
    if sys.stdin is None:  # started with standard input closed
        raise Failure("no name: standard input is closed", EX_NOINPUT)
    try:
        return _read_from_stdin()
    except OSError as error:  # open for writing only (0>file), a terminal gone, ...
        raise Failure(f"cannot read a name: {error.strerror or error}", EX_NOINPUT) from None


def _read_from_stdin() -> str:
    """One line of standard input; on a terminal, after the prompt, the whole typed line."""
    if not sys.stdin.isatty():
        line = sys.stdin.buffer.readline(protocol.MAX_REQUEST_BYTES)
        if not line:
            raise Failure("no name on standard input", EX_NOINPUT)
        return _decoded(line, "utf-8")
    # The prompt goes to standard error, as shells' own prompts do, so that the greeting alone
    # is standard output (greeter-client > file, $(greeter-client)).
    cli.write_err(PROMPT, end="")
    line = _read_typed_line()
    if not line:
        cli.write_err("")  # end the prompt's line, as the shell expects after Ctrl-D
        raise Failure("no name given", EX_NOINPUT)
    return _decoded(line, _typed_encoding())


#: Typed bytes kept of a line: a name of MAX_REQUEST_BYTES in UTF-8 may take twice as many in
#: the terminal's encoding (GB18030 writes "ë" in 4 bytes); 4 times leave room for any.
TYPED_LINE_BYTES = 4 * protocol.MAX_REQUEST_BYTES + 1


def _read_typed_line() -> bytes:
    """The typed line's first TYPED_LINE_BYTES (enough to refuse a longer name), with the
    rest read and dropped: what is left unread would reach the shell as a command once the
    client exits. Memory stays bounded even on a terminal not in line mode. A read shorter
    than asked, without a newline, is the end of input (Ctrl-D): nothing more to drop."""
    line = chunk = sys.stdin.buffer.readline(TYPED_LINE_BYTES)
    asked = TYPED_LINE_BYTES
    while len(chunk) == asked and not chunk.endswith(b"\n"):
        asked = _DRAIN_BYTES
        chunk = sys.stdin.buffer.readline(asked)
    return line


_DRAIN_BYTES = 65536


def _typed_encoding() -> str:
    """The terminal's encoding (Latin-1 sends "ë" as one byte), where it is one a terminal can
    have: one that reads ASCII as ASCII. UTF-16, UTF-7 and the like give way to UTF-8."""
    encoding = sys.stdin.encoding
    try:
        ascii_compatible = _PRINTABLE_ASCII.decode(encoding) == _PRINTABLE_ASCII.decode()
    except (UnicodeError, LookupError):
        ascii_compatible = False
    return encoding if ascii_compatible else "utf-8"


_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def _decoded(line: bytes, encoding: str) -> str:
    """The line without its ending. Bytes the encoding cannot read stay as surrogate escapes,
    so the name's check refuses them as invalid UTF-8 instead of sending something else."""
    text = line.removesuffix(b"\n").removesuffix(b"\r")
    try:
        return text.decode(encoding, "surrogateescape")
    except UnicodeError:  # a stateful encoding (ISO-2022) meeting what it cannot escape
        return text.decode("utf-8", "surrogateescape")


def _request(name: str) -> bytes:
    try:
        return protocol.encode_request(name)
    except protocol.ProtocolError as error:
        raise Failure(f"cannot send that name: {error.reason}", EX_DATAERR) from None


def exchange(path: str, request: bytes, timeout: float, socket_type: str = "stream") -> str:
    """Send one request to the server at ``path`` and return its greeting line."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, SOCKET_TYPES[socket_type]) as sock:
        try:
            if socket_type == "datagram":
                sock.bind("")  # autobind: an abstract address for the reply to come back to
            connect_in_turn(sock, path, deadline)
            sock.settimeout(max(deadline - time.monotonic(), 0.001))  # what is left of it
            if socket_type == "stream":
                _send(sock, request)
                reply = _receive(sock, deadline)
            else:
                sock.send(request)  # one message is one request; the reply is one message
                reply = sock.recv(protocol.MAX_REPLY_BYTES)
        except FileNotFoundError:
            raise Failure(
                f"{path} does not exist: greeterd is not set up there; {START_HINT}", EX_NOHOST
            ) from None
        except PermissionError:
            raise Failure(
                f"permission denied: you may not connect to {path}; ask an administrator "
                "to add you to the socket's group",
                EX_NOPERM,
            ) from None
        except ConnectionRefusedError:
            raise Failure(
                f"connection refused: nothing listens on {path}; {START_HINT}", EX_UNAVAILABLE
            ) from None
        except TimeoutError:
            raise Failure(
                f"timed out after {timeout:g}s waiting for greeterd at {path}", EX_TEMPFAIL
            ) from None
        except OSError as error:
            if error.errno is None:  # "AF_UNIX path too long" and friends: the path itself
                raise Failure(f"cannot use socket path {path!r}: {error}", cli.EX_USAGE) from None
            raise Failure(f"connection to {path} failed: {error.strerror}", EX_IOERR) from None
    return _greeting(reply)


def _greeting(reply: bytes) -> str:
    """The greeting line in the server's reply, or the Failure its error line means."""
    if not reply:
        raise Failure("the server closed the connection without answering", EX_IOERR)
    try:
        return protocol.parse_reply(reply)
    except protocol.ServerRefused as refusal:
        if refusal.reason == protocol.describe(protocol.TOO_MANY_WAITING):
            raise Failure(
                f"greeterd turned the client away: {refusal.reason}; try again when they are done",
                EX_TEMPFAIL,
            ) from None
        raise Failure(f"the server refused the name: {refusal.reason}", EX_PROTOCOL) from None
    except protocol.ProtocolError as error:
        raise Failure(f"unreadable answer from the server: {error.reason}", EX_PROTOCOL) from None


def connect_in_turn(sock: socket.socket, path: str, deadline: float) -> None:
    """connect(), waiting until ``deadline`` while the server's listen backlog is full.

    The wait is a blocking connect() bounded by SO_SNDTIMEO, as a plain client's: the kernel
    queues the waiters on the listening socket and wakes them the moment greeterd accepts,
    so the client gets in as soon as there is room, not when a retry comes round (a client
    that retries on its own clock loses its turn to any that retries faster). A stop and continue
    (Ctrl-Z, fg) breaks that wait off with EINTR, which CPython takes for a connection made;
    getpeername() tells the two apart, and an interrupted wait goes on for the time left.
    """
    sock.settimeout(None)  # blocking: only then does connect() wait in the kernel
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(left))
        try:
            sock.connect(path)
        except BlockingIOError:  # EAGAIN: SO_SNDTIMEO ran out with the backlog still full
            raise TimeoutError from None
        try:
            sock.getpeername()
        except OSError as error:
            if error.errno != errno.ENOTCONN:
                raise
            continue  # the wait was broken off (a stop and continue): not connected yet
        return


def _timeval(seconds: float) -> bytes:
    """A struct timeval for SO_SNDTIMEO: at least 1 µs (0 would mean no limit)."""
    micros = max(1, round(seconds * 1_000_000))
    return struct.pack("@ll", micros // 1_000_000, micros % 1_000_000)


def _send(sock: socket.socket, request: bytes) -> None:
    # The server may have answered early (an error line) and closed: the reply is read below.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(request)


def _receive(sock: socket.socket, deadline: float) -> bytes:
    """Read the reply line: up to its newline, EOF or MAX_REPLY_BYTES, whichever is first."""
    reply = b""
    while b"\n" not in reply and len(reply) < protocol.MAX_REPLY_BYTES:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            chunk = sock.recv(protocol.MAX_REPLY_BYTES - len(reply))
        except ConnectionResetError:
            break  # the server closed with our extra bytes unread; what arrived stands
        if not chunk:
            break
        reply += chunk
    return reply
