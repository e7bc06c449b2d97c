"""Log lines to the journal when systemd runs greeterd, to standard error otherwise.

Not the logging module: it costs more start-up time than the whole first greeting (see cli.py),
and greeterd writes only a handful of kinds of lines. The journal gets structured fields
(``GREETER_PEER_UID=``...) through systemd-python, imported on the first line sent, so a
cold start that greets without complaint never pays for it.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

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

    def __init__(self, level: int, *, to_journal: bool, stream: TextIO | None = None) -> None:
        self.level = level
        self.to_journal = to_journal
        self.stream = stream if stream is not None else sys.stderr

    def enabled(self, priority: int) -> bool:
        return priority <= self.level

    def write(self, priority: int, message: str, **fields: object) -> None:
        if priority > self.level:
            return
        if self.to_journal:
            from systemd import journal  # noqa: PLC0415 (first line only, see the docstring)

            extra = {f"GREETER_{key.upper()}": str(value) for key, value in fields.items()}
            journal.send(message, PRIORITY=str(priority), SYSLOG_IDENTIFIER=IDENTIFIER, **extra)
        else:
            self.stream.write(f"{IDENTIFIER}: {_NAMES[priority]}: {message}\n")
            self.stream.flush()

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
