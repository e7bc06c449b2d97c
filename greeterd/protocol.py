"""The greeter protocol: bytes in, values out, no I/O.

A request is a name in UTF-8 ended by ``\\n`` (``\\r\\n`` is accepted; a client that half-closes
without a newline has sent its whole name). The reply is ``Hello, {name}\\n``, or one line
``error: {reason}\\n`` when the name is refused; either way the server then closes. On
message sockets (SOCK_SEQPACKET, SOCK_DGRAM) one message is one name, its newline optional,
and the reply is one message.

Daemon and client share this module, so the client refuses locally exactly what the daemon
would refuse, and both quote the same limits. It imports nothing: the daemon loads it on every
cold start (see docs/performance.md).
"""

from __future__ import annotations

#: Longest name accepted, in bytes of UTF-8 before trimming. The longest full names on record run
#: to a few hundred characters; 1,024 bytes hold 256 characters of any script and bound what one
#: connection can make the daemon buffer (asyncio's StreamReader calls its line limit "a security
#: feature" for the same reason).
MAX_NAME_BYTES = 1024

#: Most bytes a valid request can take: the name and ``\r\n``. The daemon never buffers more.
MAX_REQUEST_BYTES = MAX_NAME_BYTES + 2

#: Bytes a server reads for one message (SOCK_SEQPACKET, SOCK_DGRAM): one to spare, so that a
#: message too long shows as too long instead of arriving cut to a valid one.
MESSAGE_READ_BYTES = MAX_REQUEST_BYTES + 1

#: Where greeter.socket listens, and where both programs look by default.
DEFAULT_SOCKET = "/run/greeter.sock"

REPLY_PREFIX = b"Hello, "
ERROR_PREFIX = b"error: "
_REPLY = REPLY_PREFIX + b"%b\n"  # one formatting, not two concatenations

#: Longest reply either kind of line can be: clients read at most this much.
MAX_REPLY_BYTES = len(REPLY_PREFIX) + MAX_NAME_BYTES + 1

# The reasons a request is refused, sent as ``error: {reason}``; docs/protocols.md lists them.
EMPTY = "empty name"
INVALID_UTF8 = "invalid UTF-8"
CONTROL_CHARACTER = "control character in name"
TOO_LONG = f"name longer than {MAX_NAME_BYTES} bytes"
TIMED_OUT = "timed out waiting for a name"
#: Not about the name: the client's user (uid) already has its share of the clients greeterd
#: waits for (server.MAX_CLIENTS_PER_UID), so this one is turned away as soon as it would wait,
#: before the rest of its request is read.
TOO_MANY_WAITING = "too many clients of this user waiting"

# Characters no name may hold. C0 controls, DEL and C1 controls (Unicode category Cc) would
# reach terminals as escape sequences; U+2028/U+2029 are newlines by another name; the bidi
# embeddings, overrides and isolates reorder whatever is printed after them ("Trojan Source").
# Other format characters stay allowed: ZWJ builds emoji and ZWNJ is part of Persian spelling.
_FORBIDDEN = frozenset(
    [chr(c) for c in range(0x20)]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + ["\u2028", "\u2029"]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
)


class ProtocolError(ValueError):
    """A request or reply that breaks the protocol; ``reason`` is the text for the error line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ServerRefused(Exception):
    """The server answered with an error line; ``reason`` is what it said."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def find_request(buffer: bytes, eof: bool) -> bytes | None:
    """Return the request line in ``buffer`` without its terminator, or None if more is needed.

    At EOF whatever arrived is the whole request. Raises ProtocolError(TOO_LONG) as soon as the
    buffer proves the line too long, so a reader never needs more than MAX_REQUEST_BYTES (a
    line longer than that which did end is refused by parse_name()).
    """
    # partition() and a one-byte slice: the cheapest way CPython has to split off a line (a
    # greeting's budget is a few microseconds; find() with bounds and endswith() parse their
    # arguments the slow way).
    line, newline, _ = buffer.partition(b"\n")
    if newline:
        return line[:-1] if line[-1:] == b"\r" else line
    if len(buffer) >= MAX_REQUEST_BYTES:
        raise ProtocolError(TOO_LONG)
    return buffer if eof else None


def parse_name(line: bytes) -> str:
    """Decode and check one request line (terminator removed); return the trimmed name."""
    if len(line) > MAX_NAME_BYTES:
        raise ProtocolError(TOO_LONG)
    try:
        text = line.decode()  # UTF-8, strict: the default, and faster than naming it
    except UnicodeDecodeError:
        raise ProtocolError(INVALID_UTF8) from None
    # isprintable() is a fast pass for nearly every real name; the set test is exact.
    if not text.isprintable() and not _FORBIDDEN.isdisjoint(text):
        raise ProtocolError(CONTROL_CHARACTER)
    name = text.strip()
    if not name:
        raise ProtocolError(EMPTY)
    return name


def parse_message(message: bytes) -> str:
    """Decode and check a name sent as one message; a trailing newline (or CRLF) is optional.

    Message sockets keep message boundaries, so nothing is buffered: a message longer than
    MAX_REQUEST_BYTES (read with one byte to spare) is refused as too long.
    """
    if len(message) > MAX_REQUEST_BYTES:
        raise ProtocolError(TOO_LONG)
    if message.endswith(b"\n"):
        message = message[:-2] if message.endswith(b"\r\n") else message[:-1]
    return parse_name(message)


def encode_request(name: str) -> bytes:
    """Return the request for ``name``, raising ProtocolError if the server would refuse it.

    Names from a command line may carry undecodable bytes as surrogate escapes; they are sent
    as those bytes, so the check sees what the server would see.
    """
    line = name.encode("utf-8", "surrogateescape")
    if b"\n" in line:
        raise ProtocolError(CONTROL_CHARACTER)
    return parse_name(line).encode("utf-8") + b"\n"


def parse_text_name(name: str) -> str:
    """Check a name that arrived as text (a Varlink string) exactly as a request line is
    checked, so both protocols refuse the same names for the same reasons."""
    try:
        line = name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry as "\ud800"
        raise ProtocolError(INVALID_UTF8) from None
    return parse_name(line)


def greeting(name: str) -> str:
    """'Hello, NAME' as text, for a name parse_text_name accepted (format_reply's line, without
    its newline)."""
    return REPLY_PREFIX.decode() + name


def format_reply(name: str) -> bytes:
    """The greeting for a name that parse_name accepted."""
    return _REPLY % name.encode()


def format_error(reason: str) -> bytes:
    """The line sent instead of a greeting."""
    return ERROR_PREFIX + reason.encode("utf-8") + b"\n"


def parse_reply(data: bytes) -> str:
    """Return the greeting line from a server's reply (without ``\\n``).

    Raises ServerRefused for an error line and ProtocolError for anything else, including an
    unfinished line or one that would print control characters on the user's terminal.
    """
    end = data.find(b"\n")
    if end < 0:
        raise ProtocolError("reply ended before its newline")
    line = data[:end]
    if line.startswith(ERROR_PREFIX):
        raise ServerRefused(describe(line[len(ERROR_PREFIX) :]))
    if not line.startswith(REPLY_PREFIX):
        raise ProtocolError(f"unexpected reply {describe(line)}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("reply is not UTF-8") from None
    if not _FORBIDDEN.isdisjoint(text):
        raise ProtocolError(f"reply holds control characters: {describe(line)}")
    return text


#: Longest text describe() returns for one value, so one client cannot flood a log line.
MAX_DESCRIBED_CHARS = 80


def describe(value: bytes | str) -> str:
    """Render client-supplied data for a log or a terminal: printable, escaped, bounded.

    Everything that is not printable (controls, bidi overrides) is shown as a Python escape and
    bytes that are not UTF-8 as a bytes literal, so no client can inject terminal or journal
    control sequences.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return _bounded(value)
    return _bounded(value)


def _bounded(value: bytes | str) -> str:
    shown = repr(value[:MAX_DESCRIBED_CHARS])
    return shown + "..." if len(value) > MAX_DESCRIBED_CHARS else shown
