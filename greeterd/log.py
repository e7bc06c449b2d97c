"""Log lines to the journal when systemd runs greeterd, to standard error otherwise, and never
wait for either (outlets.py says why).

Not the logging module: it costs more start-up time than the whole first greeting (see cli.py),
and greeterd writes only a handful of kinds of lines. Not systemd-python's ``journal.send``
either: it makes a blocking sendmsg() and has no way not to, so a stopped journald would stop
every greeting. greeterd writes the Native Journal Protocol itself (journal_entry()), which
keeps the structured fields (``GREETER_PEER_UID=``...).

A line that cannot be written now is dropped and counted; the first line written afterwards
is preceded by one that says how many were lost, with GREETER_LINES_LOST=N.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Outlet(Protocol):
        """Where lines go: outlets.JournalOutlet, outlets.StreamOutlet, or a test's list."""

        #: True: native journal entries; False: text lines.
        structured: bool

        def send(self, data: bytes) -> bool: ...


# syslog(3) priorities, as the journal stores them in PRIORITY=.
ERROR = 3
WARNING = 4
NOTICE = 5
INFO = 6
DEBUG = 7

LEVELS = {"error": ERROR, "warning": WARNING, "notice": NOTICE, "info": INFO, "debug": DEBUG}
_NAMES = {number: name for name, number in LEVELS.items()}

IDENTIFIER = "greeterd"


class Log:
    """Writes lines at or above a priority; ``fields`` become GREETER_* journal fields.

    Every message and field value must already be safe to print: callers pass client data
    through protocol.describe().
    """

    def __init__(self, level: int, outlet: Outlet, name: str = "") -> None:
        self.level = level
        self.outlet = outlet
        #: "NAME: " before every message (greeterd --name), so that processes sharing one
        #: socket can be told apart in one view of the journal; "" for none.
        self.prefix = f"{name}: " if name else ""
        #: Lines dropped since the last one that was written.
        self.lost = 0

    def enabled(self, priority: int) -> bool:
        return priority <= self.level

    def write(self, priority: int, message: str, **fields: object) -> None:
        if priority > self.level:
            return
        if self.lost:
            if not self._send(WARNING, lost_message(self.lost), {"lines_lost": self.lost}):
                self.lost += 1
                return
            self.lost = 0
        if not self._send(priority, message, fields):
            self.lost += 1

    def _send(self, priority: int, message: str, fields: dict[str, object]) -> bool:
        if self.prefix:
            message = self.prefix + message
        if self.outlet.structured:
            return self.outlet.send(journal_entry(priority, message, fields))
        return self.outlet.send(text_line(priority, message))

    def error(self, message: str, **fields: object) -> None:
        self.write(ERROR, message, **fields)

    def warning(self, message: str, **fields: object) -> None:
        self.write(WARNING, message, **fields)

    def notice(self, message: str, **fields: object) -> None:
        self.write(NOTICE, message, **fields)

    def info(self, message: str, **fields: object) -> None:
        self.write(INFO, message, **fields)

    def debug(self, message: str, **fields: object) -> None:
        self.write(DEBUG, message, **fields)


def lost_message(count: int) -> str:
    return f"{count} log lines lost: the log was not taking them (GREETER_LINES_LOST={count})"


def text_line(priority: int, message: str) -> bytes:
    """A line for standard error: 'greeterd: notice: MESSAGE'."""
    return f"{IDENTIFIER}: {_NAMES[priority]}: {message}\n".encode()


def journal_entry(priority: int, message: str, fields: dict[str, object]) -> bytes:
    """One entry in the Native Journal Protocol: KEY=VALUE lines, or for a value with a
    newline in it, KEY, a newline, the value's length as 64-bit little-endian, the value."""
    entry = bytearray()
    pairs = {"MESSAGE": message, "PRIORITY": priority, "SYSLOG_IDENTIFIER": IDENTIFIER}
    pairs.update({f"GREETER_{key.upper()}": value for key, value in fields.items()})
    for key, value in pairs.items():
        data = str(value).encode()
        if b"\n" in data:
            entry += key.encode() + b"\n" + len(data).to_bytes(8, "little") + data + b"\n"
        else:
            entry += key.encode() + b"=" + data + b"\n"
    return bytes(entry)
