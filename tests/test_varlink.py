"""The Varlink module, pure: calls as bytes in, replies as bytes out. Greet calls are answered
as sessions.py has them answered, by lines.answer() into a real Tally."""

import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greeterd import __version__, protocol, varlink
from greeterd.lines import UNKNOWN_PEER, answer
from greeterd.log import DEBUG, Log
from greeterd.tally import Tally
from tests.support import MemoryOutlet


def call(method: str, **fields) -> bytes:
    return json.dumps({"method": method, **fields}).encode() + b"\0"


def greet(name, **fields) -> bytes:
    return call("io.greeterd.Greeter.Greet", parameters={"name": name}, **fields)


def replies(data: bytes) -> list[dict[str, Any]]:
    """The NUL-ended JSON replies in ``data``."""
    assert data == b"" or data.endswith(b"\0"), data
    return [json.loads(message) for message in data.split(b"\0")[:-1]]


class RecordingTally(Tally):
    """A Tally that also keeps each refusal's (reason, what was received), in order."""

    def __init__(self) -> None:
        super().__init__(Log(DEBUG, MemoryOutlet()), time.monotonic)
        self.refusals: list[tuple[str, bytes | str]] = []

    def refusal(self, peer: tuple[int, int, int], reason: str, received: bytes | str) -> None:
        self.refusals.append((reason, received))
        super().refusal(peer, reason, received)


def greeter(tally: Tally) -> "varlink.Greet":
    """Greet's answer as sessions.py makes it, counted in ``tally``."""
    return lambda name: answer(
        tally, protocol.parse_text_name, name, UNKNOWN_PEER, varlink.GREET_REPLIES
    )


def exchange(*chunks: bytes) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Feed ``chunks`` to one connection: every reply, every refused reason, and closing."""
    connection, tally = varlink.Connection(), RecordingTally()
    sent = b""
    for chunk in chunks:
        received = connection.receive(chunk, greeter(tally))
        sent += received.replies
    return replies(sent), [reason for reason, _ in tally.refusals], connection.closing


def test_greet_answers_hello_name():
    """Greet(name) -> (greeting: "Hello, NAME"), trimmed like the line protocol's."""
    assert exchange(greet("  Zoë "))[0] == [{"parameters": {"greeting": "Hello, Zoë"}}]


def test_pipelined_calls_in_one_write_are_answered_in_order():
    """Three calls in one write: three replies, in the order of the calls."""
    answered, _, closing = exchange(greet("A") + greet("B") + greet("C"))
    assert [r["parameters"]["greeting"] for r in answered] == ["Hello, A", "Hello, B", "Hello, C"]
    assert not closing


def test_a_call_split_across_writes_is_answered_when_whole():
    """A call split anywhere, even inside a UTF-8 character, is answered once its NUL arrives."""
    message = greet("李小龍")
    connection, tally = varlink.Connection(), Tally(Log(DEBUG, MemoryOutlet()), time.monotonic)
    for byte in range(len(message) - 1):
        assert connection.receive(message[byte : byte + 1], greeter(tally)).replies == b""
    received = connection.receive(message[-1:], greeter(tally))
    assert replies(received.replies) == [{"parameters": {"greeting": "Hello, 李小龍"}}]
    assert tally.greeted == 1
    assert received.calls == 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", protocol.EMPTY),
        ("  ", protocol.EMPTY),
        ("a\x1b[31mb", protocol.CONTROL_CHARACTER),
        ("a\nb", protocol.CONTROL_CHARACTER),
        ("\u202eevil", protocol.CONTROL_CHARACTER),
        ("\ud800", protocol.INVALID_UTF8),
        ("x" * (protocol.MAX_NAME_BYTES + 1), protocol.TOO_LONG),
    ],
)
def test_names_the_line_protocol_refuses_are_invalid_name_with_its_reason(name, reason):
    """Both protocols share protocol.py's checks: the same names, the same reasons."""
    answered, refused, closing = exchange(greet(name))
    assert answered == [{"error": varlink.INVALID_NAME, "parameters": {"reason": reason}}]
    assert refused == [reason]
    assert not closing


@given(st.text(max_size=300))
def test_varlink_and_the_line_protocol_agree_on_every_name(name):
    """For any text, Greet refuses exactly when a request line of its UTF-8 is refused, for
    the same reason, and otherwise greets the same name."""
    try:
        line = name.encode("utf-8")
    except UnicodeEncodeError:
        return  # not sendable as a line at all; test_names_the_line_protocol_refuses covers it
    try:
        expected: dict[str, object] = {
            "parameters": {"greeting": "Hello, " + protocol.parse_name(line)}
        }
    except protocol.ProtocolError as refusal:
        expected = {"error": varlink.INVALID_NAME, "parameters": {"reason": refusal.reason}}
    if b"\n" in line or b"\r" in line:
        return  # a line ends at its newline; as a Varlink string it is a control character
    assert exchange(greet(name))[0] == [expected]


def test_get_info_names_the_service_and_its_interfaces():
    """org.varlink.service.GetInfo answers with greeterd as vendor and product, its version,
    its man page as url, and exactly the two interfaces it serves."""
    (info,) = exchange(call("org.varlink.service.GetInfo"))[0]
    assert info["parameters"] == {
        "vendor": "greeterd",
        "product": "greeterd",
        "version": __version__,
        "url": "man:greeterd(8)",
        "interfaces": ["org.varlink.service", "io.greeterd.Greeter"],
    }


@pytest.mark.parametrize("interface", ["io.greeterd.Greeter", "org.varlink.service"])
def test_get_interface_description_returns_the_idl(interface):
    """The IDL text is kept in one place and returned as it is."""
    (reply,) = exchange(
        call("org.varlink.service.GetInterfaceDescription", parameters={"interface": interface})
    )[0]
    description = reply["parameters"]["description"]
    assert description == varlink.DESCRIPTIONS[interface]
    assert f"interface {interface}\n" in description


def test_the_greeter_idl_declares_greet_and_invalid_name():
    """The io.greeterd.Greeter IDL declares the Greet method with its signature and the
    InvalidName error that refusals use."""
    assert "method Greet(name: string) -> (greeting: string)" in varlink.IDL
    assert "error InvalidName(reason: string)" in varlink.IDL


@pytest.mark.parametrize(
    ("message", "error", "parameters"),
    [
        (
            call("com.example.Nope.Greet"),
            varlink.INTERFACE_NOT_FOUND,
            {"interface": "com.example.Nope"},
        ),
        (
            call("io.greeterd.Greeter.Wave"),
            varlink.METHOD_NOT_FOUND,
            {"method": "io.greeterd.Greeter.Wave"},
        ),
        (
            call("org.varlink.service.GetInterfaceDescription", parameters={"interface": "x.y"}),
            varlink.INTERFACE_NOT_FOUND,
            {"interface": "x.y"},
        ),
        (call("io.greeterd.Greeter.Greet"), varlink.INVALID_PARAMETER, {"parameter": "name"}),
        (
            call("io.greeterd.Greeter.Greet", parameters={"name": 7}),
            varlink.INVALID_PARAMETER,
            {"parameter": "name"},
        ),
        (
            call("io.greeterd.Greeter.Greet", parameters={"name": None}),
            varlink.INVALID_PARAMETER,
            {"parameter": "name"},
        ),
        (
            call("io.greeterd.Greeter.Greet", parameters={"name": "A", "title": "Dr"}),
            varlink.INVALID_PARAMETER,
            {"parameter": "title"},
        ),
        (
            call("io.greeterd.Greeter.Greet", parameters=[]),
            varlink.INVALID_PARAMETER,
            {"parameter": "parameters"},
        ),
        (
            call("io.greeterd.Greeter.\ud800"),
            varlink.METHOD_NOT_FOUND,
            {"method": "io.greeterd.Greeter.\ud800"},
        ),
        (
            call("org.varlink.service.GetInterfaceDescription", parameters={"interface": "\udc80"}),
            varlink.INTERFACE_NOT_FOUND,
            {"interface": "\udc80"},
        ),
        (
            call("io.greeterd.Greeter.Greet", parameters={"name": "A", "\ud800": 1}),
            varlink.INVALID_PARAMETER,
            {"parameter": "\ud800"},
        ),
        (
            greet("A", more=True),
            varlink.METHOD_NOT_IMPLEMENTED,
            {"method": "io.greeterd.Greeter.Greet"},
        ),
        (
            greet("A", upgrade=True),
            varlink.METHOD_NOT_IMPLEMENTED,
            {"method": "io.greeterd.Greeter.Greet"},
        ),
    ],
    ids=[
        "unknown interface",
        "unknown method",
        "description of an unknown interface",
        "missing name",
        "name a number",
        "name null",
        "unknown parameter",
        "parameters not an object",
        "a lone surrogate in an unknown method",
        "a lone surrogate as the interface to describe",
        "a lone surrogate as a parameter's name",
        "more",
        "upgrade",
    ],
)
def test_bad_calls_get_the_standard_errors_and_the_connection_goes_on(message, error, parameters):
    """Each bad call is answered with org.varlink.service's error, and the next call on the
    same connection is still answered."""
    answered, refused, closing = exchange(message + greet("after"))
    assert answered == [
        {"error": error, "parameters": parameters},
        {"parameters": {"greeting": "Hello, after"}},
    ]
    assert (refused, closing) == ([], False)


#: Any string JSON can carry, lone surrogates included (UTF-8 cannot encode those).
ANY_TEXT = st.lists(st.integers(0, 0x10FFFF).map(chr), max_size=12).map("".join)


@given(
    interface=st.sampled_from(["", "io.greeterd.Greeter.", "org.varlink.service.", "x."]),
    method=ANY_TEXT,
    parameters=st.dictionaries(ANY_TEXT, ANY_TEXT | st.integers(), max_size=3),
)
def test_any_call_gets_a_json_reply_and_the_connection_goes_on(interface, method, parameters):
    """Whatever a well-framed call names or passes, it is answered with JSON (an error repeats
    the client's strings, lone surrogates too) and the next call is still answered."""
    answered, _, closing = exchange(
        call(interface + method, parameters=parameters) + greet("after")
    )
    assert not closing
    assert answered[-1] == {"parameters": {"greeting": "Hello, after"}}


def test_greetings_are_counted_and_refusals_carry_the_name():
    """The server counts greetings and logs each refusal with the name it refused."""
    tally = RecordingTally()
    received = varlink.Connection().receive(
        greet("A") + greet("a\x1bb") + greet("B"), greeter(tally)
    )
    assert tally.greeted == 2
    assert tally.refusals == [(protocol.CONTROL_CHARACTER, "a\x1bb")]
    assert received.calls == 3  # each whole call, refused or not, earns the connection time


def test_only_greet_calls_that_greet_are_counted():
    """A Greet answered with an error (a parameter it does not know, more) greets no one."""
    tally = RecordingTally()
    varlink.Connection().receive(
        greet("A", more=True)
        + call("io.greeterd.Greeter.Greet", parameters={"name": "A", "title": "Dr"})
        + greet("B")
        + greet("C", oneway=True),
        greeter(tally),
    )
    assert tally.greeted == 2  # B, and C though a oneway call gets no reply
    assert tally.refusals == []


def test_oneway_calls_get_no_reply_not_even_an_error():
    """A call with oneway: true gets no reply: a good one is still counted as a call, a
    refused one is still a refusal with its reason, but only the plain call is answered."""
    answered, refused, _ = exchange(greet("A", oneway=True) + greet("", oneway=True) + greet("B"))
    assert answered == [{"parameters": {"greeting": "Hello, B"}}]
    assert refused == [protocol.EMPTY]
    assert (
        varlink.Connection().receive(greet("A", oneway=True), greeter(RecordingTally())).calls == 1
    )


@pytest.mark.parametrize(
    "broken",
    [
        b"{not json\0",
        b"\xff\xfe\0",
        b"[1, 2]\0",
        b'"a string"\0',
        b'{"parameters": {}}\0',
        b'{"method": 42}\0',
        b"[" * 10000 + b"]" * 10000 + b"\0",
    ],
    ids=["invalid JSON", "not UTF-8", "array", "string", "no method", "method a number", "deep"],
)
def test_a_message_that_breaks_the_framing_closes_after_the_earlier_replies(broken):
    """Replies to the calls before it are sent; nothing after it is answered; closing is set."""
    answered, _, closing = exchange(greet("before") + broken + greet("after"))
    assert answered == [{"parameters": {"greeting": "Hello, before"}}]
    assert closing


def test_a_message_past_the_cap_closes_without_buffering_the_rest():
    """Without a NUL within MAX_MESSAGE_BYTES the connection is closing, and what follows is
    neither kept nor answered."""
    connection, greet_call = varlink.Connection(), greeter(RecordingTally())
    connection.receive(b'{"method": "' + b"x" * (varlink.MAX_MESSAGE_BYTES - 100), greet_call)
    assert not connection.closing
    assert connection.receive(b"x" * 200, greet_call).replies == b""
    assert connection.closing
    assert connection.receive(b"x" * 10**6 + greet("A"), greet_call).replies == b""


def test_the_largest_valid_greet_fits_under_the_cap():
    """A name of MAX_NAME_BYTES written entirely as JSON escapes is still one whole call."""
    name = "\u00e9" * (protocol.MAX_NAME_BYTES // 2)  # 1024 bytes of UTF-8
    message = json.dumps({"method": "io.greeterd.Greeter.Greet", "parameters": {"name": name}})
    assert len(message) + 1 < varlink.MAX_MESSAGE_BYTES
    assert exchange(message.encode() + b"\0")[0] == [{"parameters": {"greeting": f"Hello, {name}"}}]
