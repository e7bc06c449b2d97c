"""The Varlink interface io.greeterd.Greeter: framing and dispatch, bytes in and replies out.

Pure, like protocol.py: no sockets, no logging, no clock. The server only moves bytes:
sessions.py feeds what a connection sends to Connection.receive() and writes back the replies.
A Greet call's name is judged by the function receive() is given (sessions.py gives
lines.answer(), which answers every kind of client), and its verdict written with greeting()
or invalid_name().

Varlink (varlink.org) is what systemd's own services speak (hostnamed, userdbd, resolved):
each message is one JSON object ended by a NUL byte, a connection carries any number of calls
answered in order, and the interface is described in an IDL that clients read at run time, so
``varlinkctl call``, ``introspect`` and ``info`` work with no client of ours.

Policy, where the specification leaves a choice:
- Parameters are strict: a missing or non-string ``name``, or any parameter Greet does not
  know, is org.varlink.service.InvalidParameter naming it (as systemd's services answer).
- ``more`` and ``upgrade`` are org.varlink.service.MethodNotImplemented: every method here
  has one reply and nothing to upgrade to. ``oneway`` calls get no reply at all, errors
  included.
- A message that is not UTF-8, not JSON, not an object, or has no string ``method``, breaks the
  framing: nothing after it can be trusted, so the connection is closed (``closing``) once the
  replies to the calls before it are sent. So is a message longer than MAX_MESSAGE_BYTES, whose
  rest is never buffered.
"""

from __future__ import annotations

import json

from greeterd import __version__, protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    #: The answer to Greet(name): greeting(name), or invalid_name(reason) for a refused name.
    Greet = Callable[[str], dict[str, Any]]

INTERFACE = "io.greeterd.Greeter"
SERVICE = "org.varlink.service"

#: The longest message, NUL included, a connection may send. A Greet call carries at most
#: protocol.MAX_NAME_BYTES of name, which JSON may spell as \\uXXXX escapes (6 bytes per byte
#: of a control character, 12 per character outside the BMP written as a surrogate pair):
#: about 6 KiB with the method name and framing. 16 KiB holds every valid call with room
#: to spare; past it greeterd stops reading and closes, as protocol.MAX_REQUEST_BYTES bounds a
#: line.
MAX_MESSAGE_BYTES = 16 * 1024

#: io.greeterd.Greeter, as GetInterfaceDescription returns it and varlinkctl introspect shows.
IDL = f"""\
# Greets a name, as greeterd's line protocol on /run/greeter.sock does.
interface {INTERFACE}

# Returns "Hello, NAME". The name is trimmed of surrounding whitespace.
method Greet(name: string) -> (greeting: string)

# The name was refused; reason is the line protocol's: "empty name", "invalid UTF-8",
# "control character in name" or "name longer than {protocol.MAX_NAME_BYTES} bytes".
error InvalidName(reason: string)

# The connection was turned away before its first call: the user who connected already
# has their share of the connections greeterd waits for. Sent once, then the connection
# is closed; reason is the line protocol's "{protocol.TOO_MANY_WAITING}".
error TooManyClients(reason: string)
"""

#: org.varlink.service, as the Varlink specification writes it.
SERVICE_IDL = """\
# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

# The requested interface was not found.
error InterfaceNotFound (interface: string)

# The requested method was not found
error MethodNotFound (method: string)

# The interface defines the requested method, but the service does not
# implement it.
error MethodNotImplemented (method: string)

# One of the passed parameters is invalid.
error InvalidParameter (parameter: string)
"""

DESCRIPTIONS = {SERVICE: SERVICE_IDL, INTERFACE: IDL}

INFO = {
    "vendor": "greeterd",
    "product": "greeterd",
    "version": __version__,
    "url": "man:greeterd(8)",
    "interfaces": [SERVICE, INTERFACE],
}

GREET = f"{INTERFACE}.Greet"
INVALID_NAME = f"{INTERFACE}.InvalidName"
TOO_MANY_CLIENTS = f"{INTERFACE}.TooManyClients"
INTERFACE_NOT_FOUND = f"{SERVICE}.InterfaceNotFound"
METHOD_NOT_FOUND = f"{SERVICE}.MethodNotFound"
METHOD_NOT_IMPLEMENTED = f"{SERVICE}.MethodNotImplemented"
INVALID_PARAMETER = f"{SERVICE}.InvalidParameter"


class Received:
    """What a connection's bytes called for: the replies to send, and how many calls."""

    __slots__ = ("calls", "replies")

    def __init__(self) -> None:
        self.replies = b""
        #: Whole calls taken, answered or oneway: what earns a connection more time.
        self.calls = 0


class Connection:
    """One Varlink connection's state: the start of a message still arriving."""

    def __init__(self) -> None:
        self._partial = b""
        #: The peer broke the framing or the size cap: send the replies, then close.
        self.closing = False

    def receive(self, data: bytes, greet: Greet) -> Received:
        """Take bytes from the peer: the replies to send (in order, NUL-ended) and how many
        calls were whole. ``greet`` answers each Greet call's name, oneway ones included."""
        received = Received()
        if self.closing:
            return received
        *messages, self._partial = (self._partial + data).split(b"\0")
        replies = []
        for message in messages:
            call = None if len(message) >= MAX_MESSAGE_BYTES else decode(message)
            if call is None:
                self._break()
                break
            received.calls += 1
            answer = dispatch(call, greet)
            if call.get("oneway") is not True:  # a oneway call gets no reply, errors included
                replies.append(encode(answer))
        if len(self._partial) >= MAX_MESSAGE_BYTES:
            self._break()
        received.replies = b"".join(replies)
        return received

    def _break(self) -> None:
        self.closing = True
        self._partial = b""


def decode(message: bytes) -> dict[str, Any] | None:
    """The call in one message, or None when it is not one: not UTF-8, not JSON (nesting too
    deep for the parser included), not an object, or without a string method."""
    try:
        call = json.loads(message.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        return None
    return call


def encode(reply: dict[str, Any]) -> bytes:
    """One reply message, NUL-ended, in UTF-8 as written. An error may repeat a string the
    client sent, and JSON can spell a lone surrogate (``"\\ud800"``) where UTF-8 cannot: the
    encoder writes one back as that escape (only a JSON string can hold one, and json.dumps
    has already escaped every backslash), so the reply stays valid JSON instead of raising."""
    text = json.dumps(reply, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace") + b"\0"


def dispatch(call: dict[str, Any], greet: Greet) -> dict[str, Any]:
    """The answer to one call: a reply or an error. ``greet`` answers a Greet call whose
    parameters are right."""
    problem = _problem(call)
    if problem is not None:
        return problem
    interface, _, name = call["method"].rpartition(".")
    parameters = call.get("parameters", {})
    if interface == INTERFACE:
        return greet(parameters["name"])
    if name == "GetInfo":
        return {"parameters": INFO}
    return _describe(parameters["interface"])


def _problem(call: dict[str, Any]) -> dict[str, Any] | None:
    """The standard error a call gets instead of running, or None when it can run."""
    method: str = call["method"]
    interface, _, name = method.rpartition(".")
    if interface not in DESCRIPTIONS:
        return error(INTERFACE_NOT_FOUND, interface=interface)
    expected = _METHODS.get((interface, name))
    if expected is None:
        return error(METHOD_NOT_FOUND, method=method)
    if call.get("more") is True or call.get("upgrade") is True:
        return error(METHOD_NOT_IMPLEMENTED, method=method)
    wrong = _wrong_parameter(call.get("parameters", {}), expected)
    return None if wrong is None else error(INVALID_PARAMETER, parameter=wrong)


def _wrong_parameter(parameters: object, expected: dict[str, type]) -> str | None:
    """The first parameter that is unknown, missing or of the wrong type, or None."""
    if not isinstance(parameters, dict):
        return "parameters"
    unknown = sorted(parameters.keys() - expected.keys())
    if unknown:
        return str(unknown[0])
    return next(
        (key for key, kind in expected.items() if not isinstance(parameters.get(key), kind)), None
    )


def _describe(interface: str) -> dict[str, Any]:
    if interface not in DESCRIPTIONS:
        return error(INTERFACE_NOT_FOUND, interface=interface)
    return {"parameters": {"description": DESCRIPTIONS[interface]}}


def greeting(name: str) -> dict[str, Any]:
    """Greet's reply for a name the line protocol's checks accepted."""
    return {"parameters": {"greeting": protocol.greeting(name)}}


def invalid_name(reason: str) -> dict[str, Any]:
    """Greet's error for a name the line protocol's checks refused, with their reason."""
    return error(INVALID_NAME, reason=reason)


#: Greet's replies, for lines.answer(): the greeting, or InvalidName.
GREET_REPLIES = (greeting, invalid_name)


def too_many_clients(reason: str) -> dict[str, Any]:
    """The error a connection past its user's share gets instead of being served."""
    return error(TOO_MANY_CLIENTS, reason=reason)


#: A connection's replies when it is past its user's share, for lines.answer(): only the
#: refusal is ever sent.
SHARE_REPLIES = (greeting, too_many_clients)


def error(name: str, **parameters: str) -> dict[str, Any]:
    return {"error": name, "parameters": parameters}


#: Each method's parameters and their JSON types (all required).
_METHODS: dict[tuple[str, str], dict[str, type]] = {
    (INTERFACE, "Greet"): {"name": str},
    (SERVICE, "GetInfo"): {},
    (SERVICE, "GetInterfaceDescription"): {"interface": str},
}
