"""Command lines for both programs: one table of options gives parsing, --help and man pages.

greeterd is started on the first connection, so its start-up time is part of every cold
greeting; argparse (with re and gettext) costs about as much as the rest of the start-up
together, so the programs parse with this small table instead. It knows long options with one
value (``--opt VALUE`` or ``--opt=VALUE``), flags, ``-h``/``--help`` and ``--version``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: sysexits.h: the command line was wrong.
EX_USAGE = 64
#: sysexits.h: output could not be written (standard output closed, its reader gone, a full
#: disk); the client uses it for a connection that broke, too.
EX_IOERR = 74

#: The longest duration an option takes: epoll's and the sockets' timeouts overflow past about
#: 24 days (2**31 ms), and no wait of a greeter needs more than days.
MAX_SECONDS = 1_000_000


class UsageError(Exception):
    """A command line the program cannot run with; the message says what to change."""


class Exit(Exception):
    """--help or --version was asked for: print ``text`` and exit 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Option:
    """One long option: where its value goes, how it is read, and how --help explains it."""

    __slots__ = ("convert", "dest", "flag", "help", "metavar")

    def __init__(
        self,
        flag: str,
        help: str,
        *,
        metavar: str | None = None,
        convert: Callable[[str], object] = str,
    ) -> None:
        self.flag = flag
        self.dest = flag.removeprefix("--").replace("-", "_")
        self.metavar = metavar
        self.help = help
        self.convert = convert

    @property
    def takes_value(self) -> bool:
        return self.metavar is not None

    def usage(self) -> str:
        return f"{self.flag} {self.metavar}" if self.takes_value else self.flag


class Command:
    """A program's command line. Values land as attributes on the settings object given to parse."""

    def __init__(
        self,
        prog: str,
        version: str,
        summary: str,
        options: Sequence[Option],
        *,
        description: str | Callable[[], str],
        exit_statuses: Sequence[tuple[int, str]],
    ) -> None:
        self.prog = prog
        self.version = version
        self.summary = summary
        self.options = options
        self._description = description
        self.exit_statuses = exit_statuses
        self._by_flag = {option.flag: option for option in options}

    @property
    def description(self) -> str:
        """The paragraph of --help and the man page; a function makes it only when asked for,
        so that what it quotes need not be imported at every start."""
        described = self._description
        return described if isinstance(described, str) else described()

    def parse(self, argv: Sequence[str], settings: object) -> None:
        """Set the attributes of ``settings`` named by the options in ``argv``.

        Raises UsageError for anything not in the table and Exit for --help and --version.
        """
        args = iter(argv)
        for arg in args:
            if arg in ("-h", "--help"):
                raise Exit(self.help())
            if arg == "--version":
                raise Exit(f"{self.prog} {self.version}\n")
            flag, has_value, value = arg.partition("=")
            option = self._by_flag.get(flag)
            if option is None:
                raise UsageError(f"unknown argument {arg!r} (see {self.prog} --help)")
            if not option.takes_value:
                if has_value:
                    raise UsageError(f"{flag} takes no value")
                setattr(settings, option.dest, True)
                continue
            if not has_value:
                following = next(args, None)
                if following is None:
                    raise UsageError(f"{flag} needs a value: {option.usage()}")
                value = following
            try:
                setattr(settings, option.dest, option.convert(value))
            except ValueError as error:
                raise UsageError(f"{flag}: {error}") from None

    def parse_or_exit(self, argv: Sequence[str] | None, settings: object) -> int | None:
        """Parse ``argv`` (default: sys.argv[1:]) into ``settings``; return None to go on, or
        the exit status after printing --help, --version or what is wrong with the command line.
        """
        try:
            self.parse(sys.argv[1:] if argv is None else argv, settings)
        except Exit as done:
            problem = write_out(done.text)
            if problem is None:
                return 0
            write_err(f"{self.prog}: cannot write to standard output: {problem}")
            return EX_IOERR
        except UsageError as error:
            write_err(f"{self.prog}: {error}")
            return EX_USAGE
        return None

    def help(self) -> str:
        """The --help text: usage, what the program does, each option, the exit statuses."""
        column = max(len(o.usage()) for o in self.options) + 4
        lines = [f"usage: {self.prog} [OPTIONS]", "", self.summary, ""]
        lines += [*wrap(self.description, HELP_WIDTH), "", "options:"]
        rows = [(o.usage(), o.help) for o in self.options]
        rows += [
            ("-h, --help", "show this help and exit"),
            ("--version", "show the version and exit"),
        ]
        for usage, text in rows:
            wrapped = wrap(text, HELP_WIDTH - column - 2)
            lines.append(f"  {usage:<{column}}{wrapped[0]}")
            lines += [" " * (column + 2) + more for more in wrapped[1:]]
        lines += ["", "exit status:"]
        for code, meaning in self.exit_statuses:
            wrapped = wrap(meaning, HELP_WIDTH - 6)
            lines.append(f"  {code:<4}{wrapped[0]}")
            lines += [" " * 6 + more for more in wrapped[1:]]
        return "\n".join(lines) + "\n"


#: Columns --help fills, as man(1) does on a standard terminal.
HELP_WIDTH = 79


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap (textwrap would import re, which costs start-up time)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def seconds(text: str) -> float:
    """A non-negative duration in seconds, as given to --timeout and friends."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"{text!r} is not a duration of zero seconds or more")
    if value > MAX_SECONDS:
        raise ValueError(f"{text!r} is more than {MAX_SECONDS:,} seconds")
    return value


def write_out(text: str) -> str | None:
    """Write ``text`` to standard output now: None once it is written, else why it could not
    be (closed, its reader gone, a full disk), for the caller to say in one line instead of a
    traceback. After a failure standard output is /dev/null, so that the flush at exit has
    nothing left to fail on."""
    stream = sys.stdout
    if stream is None:  # started with fd 1 closed
        return "it is closed"
    try:
        stream.write(text)
        stream.flush()
    except OSError as error:
        _discard_standard_output()
        return error.strerror or str(error)
    return None


def _discard_standard_output() -> None:
    """Point fd 1 at /dev/null (best effort), so that the flush at exit finds a place to go."""
    import os  # noqa: PLC0415 (only after a failed write)

    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    os.dup2(null, 1)
    os.close(null)


def write_err(text: str, end: str = "\n") -> None:
    """Write a line (or a prompt, with ``end=""``) to standard error, if there is one to
    write to: started with fd 2 closed, the exit status is all a program can say."""
    if sys.stderr is None:
        return
    try:
        sys.stderr.write(text + end)
        sys.stderr.flush()
    except OSError:
        pass


def path(text: str) -> str:
    """A socket path: an empty one would make connect() fail with EINVAL, and bind() autobind
    an abstract address."""
    if not text:
        raise ValueError("the path is empty")
    return text


def name(text: str) -> str:
    """A process's name for its STATUS= and log lines: 1 to 64 letters, digits and ``@._-``
    (worker-2), nothing that could garble or split a line."""
    if (
        not text
        or len(text) > 64
        or not all(c.isascii() and (c.isalnum() or c in "@._-") for c in text)
    ):
        raise ValueError(f"{text!r} is not 1 to 64 letters, digits, '@', '.', '_' or '-'")
    return text


def choice(*allowed: str) -> Callable[[str], str]:
    """A converter that accepts one of ``allowed``."""

    def convert(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return text

    return convert
