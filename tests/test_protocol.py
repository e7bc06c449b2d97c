"""The protocol module: request framing, name rules, replies, and safe rendering for logs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greeterd import protocol
from greeterd.protocol import ProtocolError, ServerRefused

REASONS = {protocol.EMPTY, protocol.INVALID_UTF8, protocol.CONTROL_CHARACTER, protocol.TOO_LONG}
NAMES = ["Zoë", "李小龍", "O'Brien", "Jean-Luc", "👩‍🚀 Ada", "Ἀριστοτέλης", "محمد", "Łukasz"]


def parse(data: bytes, eof: bool = False) -> str:
    line = protocol.find_request(data, eof)
    assert line is not None, f"{data!r} should hold a whole request"
    return protocol.parse_name(line)


def reason_for(data: bytes, eof: bool = True) -> str:
    with pytest.raises(ProtocolError) as refused:
        parse(data, eof)
    return refused.value.reason


@pytest.mark.parametrize("name", NAMES)
def test_names_in_any_script_are_greeted(name):
    """Every script, apostrophes, hyphens and emoji (with ZWJ) are names."""
    assert protocol.format_reply(parse(name.encode() + b"\n")) == f"Hello, {name}\n".encode()


@pytest.mark.parametrize(
    ("data", "eof"),
    [(b"Zo\xc3\xab\n", False), (b"Zo\xc3\xab\r\n", False), (b"Zo\xc3\xab", True)],
    ids=["LF", "CRLF", "EOF without newline"],
)
def test_a_request_ends_with_lf_crlf_or_eof(data, eof):
    """LF and CRLF end a request; a half-close without a newline sends the whole name."""
    assert parse(data, eof) == "Zoë"


def test_an_unfinished_request_needs_more_bytes():
    """Without a newline and before EOF, the reader must wait."""
    assert protocol.find_request(b"Zo", eof=False) is None


def test_surrounding_whitespace_is_trimmed():
    """Spaces around the name, including non-ASCII ones, are not part of it."""
    assert parse("  Zoë \u3000\n".encode()) == "Zoë"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\n", protocol.EMPTY),
        (b"   \n", protocol.EMPTY),
        (b"\xff\xfe\n", protocol.INVALID_UTF8),
        (b"\xc0\xaf\n", protocol.INVALID_UTF8),  # overlong encoding of "/"
        (b"\xed\xa0\x80\n", protocol.INVALID_UTF8),  # a UTF-16 surrogate
        (b"Zo\xc3\n", protocol.INVALID_UTF8),  # truncated sequence
        (b"a\x00b\n", protocol.CONTROL_CHARACTER),
        (b"a\x1b[31mb\n", protocol.CONTROL_CHARACTER),
        (b"a\x7fb\n", protocol.CONTROL_CHARACTER),
        ("a\u0085b\n".encode(), protocol.CONTROL_CHARACTER),  # C1 NEL
        ("a\u009bb\n".encode(), protocol.CONTROL_CHARACTER),  # C1 CSI
        (b"a\rb\n", protocol.CONTROL_CHARACTER),
        (b"a\tb\n", protocol.CONTROL_CHARACTER),
        ("a\u2028b\n".encode(), protocol.CONTROL_CHARACTER),  # line separator
        ("a\u202eb\n".encode(), protocol.CONTROL_CHARACTER),  # right-to-left override
        ("a\u2066b\n".encode(), protocol.CONTROL_CHARACTER),  # left-to-right isolate
        (b"a" * (protocol.MAX_NAME_BYTES + 1) + b"\n", protocol.TOO_LONG),
    ],
)
def test_refused_requests_name_their_reason(data, reason):
    """Each kind of bad request is refused with its documented reason."""
    assert reason_for(data) == reason


def test_the_longest_name_is_accepted_with_either_terminator():
    """MAX_NAME_BYTES is inclusive, with LF or with CRLF."""
    name = b"a" * protocol.MAX_NAME_BYTES
    assert parse(name + b"\n") == name.decode()
    assert parse(name + b"\r\n") == name.decode()


def test_an_overlong_line_is_refused_without_waiting_for_its_end():
    """The reader gives up once MAX_REQUEST_BYTES arrive without a newline."""
    with pytest.raises(ProtocolError, match="longer than"):
        protocol.find_request(b"a" * protocol.MAX_REQUEST_BYTES, eof=False)
    assert protocol.find_request(b"a" * (protocol.MAX_REQUEST_BYTES - 1), eof=False) is None


def test_only_the_first_line_is_the_request():
    """Bytes after the first newline (a pipelined second name) are not part of the name."""
    assert parse(b"Ada\nGrace\n") == "Ada"


@given(st.text(min_size=1))
def test_any_accepted_name_round_trips(text):
    """Whatever the client-side check lets through, the server greets as the same name."""
    try:
        request = protocol.encode_request(text)
    except ProtocolError:
        return
    name = parse(request)
    assert name == text.strip()
    assert protocol.parse_reply(protocol.format_reply(name)) == f"Hello, {name}"


@given(st.binary(max_size=2 * protocol.MAX_REQUEST_BYTES), st.booleans())
def test_no_input_raises_anything_but_a_protocol_error(data, eof):
    """Arbitrary bytes give a name, a request for more, or ProtocolError; nothing else."""
    reason: str | None = None
    try:
        line = protocol.find_request(data, eof)
        name = None if line is None else protocol.parse_name(line)
    except ProtocolError as error:
        reason = error.reason
    else:
        assert name is None or (name and name == name.strip())
    assert reason is None or reason in REASONS


@given(st.binary(max_size=300))
def test_any_accepted_name_is_free_of_forbidden_characters(data):
    """No accepted name can carry a control character to a terminal or log."""
    try:
        name = protocol.parse_name(data)
    except ProtocolError:
        return
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name)
    assert not set(name) & {"\u2028", "\u2029", "\u202e", "\u2066"}


def test_error_lines_name_the_reason():
    """Refusals are one line: 'error: ' and the reason."""
    assert protocol.format_error(protocol.EMPTY) == b"error: empty name\n"


def test_the_client_reads_a_greeting_or_an_error():
    """parse_reply returns the greeting and raises ServerRefused for an error line."""
    assert protocol.parse_reply(b"Hello, Zo\xc3\xab\n") == "Hello, Zoë"
    with pytest.raises(ServerRefused, match="empty name"):
        protocol.parse_reply(b"error: empty name\n")


@pytest.mark.parametrize(
    "reply",
    [b"", b"Hello, Zo", b"Howdy\n", b"Hello, \xff\n", b"Hello, \x1b[2J\n"],
    ids=["empty", "unfinished", "unknown", "not UTF-8", "escape sequence"],
)
def test_the_client_refuses_replies_it_cannot_print_safely(reply):
    """Anything but a whole, clean greeting or error line is a protocol error."""
    with pytest.raises(ProtocolError):
        protocol.parse_reply(reply)


def test_encode_request_refuses_before_sending():
    """The client-side check refuses what the server would, including embedded newlines."""
    assert protocol.encode_request(" Zoë ") == "Zoë\n".encode()
    for bad in ["", "a\nb", "a\x1bb", "a" * (protocol.MAX_NAME_BYTES + 1)]:
        with pytest.raises(ProtocolError):
            protocol.encode_request(bad)


def test_undecodable_command_line_bytes_are_refused_as_invalid_utf8():
    """A name from argv with bytes that are not UTF-8 is refused as the server would."""
    name = b"Zo\xff".decode("utf-8", "surrogateescape")
    with pytest.raises(ProtocolError, match="invalid UTF-8"):
        protocol.encode_request(name)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Zoë", "'Zoë'"),
        ("a\x1b[31mb", "'a\\x1b[31mb'"),
        ("a\u202eb", "'a\\u202eb'"),
        (b"a\xffb", "b'a\\xffb'"),
        ("\x1b]0;title\x07", "'\\x1b]0;title\\x07'"),
    ],
)
def test_describe_escapes_everything_unprintable(value, shown):
    """Log and terminal text never carries raw controls, OSC sequences or bidi overrides."""
    assert protocol.describe(value) == shown


def test_describe_is_bounded():
    """One client cannot make a log line longer than MAX_DESCRIBED_CHARS plus quotes."""
    shown = protocol.describe("x" * 10_000)
    assert len(shown) <= protocol.MAX_DESCRIBED_CHARS + 5
    assert shown.endswith("...")


@pytest.mark.parametrize(
    ("message", "outcome"),
    [
        (b"Zo\xc3\xab", "Zoë"),
        (b"Zo\xc3\xab\n", "Zoë"),
        (b"Zo\xc3\xab\r\n", "Zoë"),
        (b"a\nb", protocol.CONTROL_CHARACTER),
        (b"Zoe\r", protocol.CONTROL_CHARACTER),
        (b"\n", protocol.EMPTY),
        (b"a" * protocol.MAX_NAME_BYTES + b"\r\n", "a" * protocol.MAX_NAME_BYTES),
        (b"a" * (protocol.MAX_REQUEST_BYTES + 1), protocol.TOO_LONG),
    ],
    ids=["bare", "LF", "CRLF", "inner newline", "bare CR", "empty", "limit with CRLF", "too long"],
)
def test_a_message_is_one_name_with_an_optional_newline(message, outcome):
    """Seqpacket and datagram requests: one message, a trailing LF or CRLF optional."""
    if outcome in REASONS:
        with pytest.raises(ProtocolError) as refused:
            protocol.parse_message(message)
        assert refused.value.reason == outcome
    else:
        assert protocol.parse_message(message) == outcome
