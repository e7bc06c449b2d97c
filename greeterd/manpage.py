"""Man pages for both programs, made from the same option tables they parse with.

    python3 -m greeterd.manpage greeterd > greeterd.8
    python3 -m greeterd.manpage greeter-client > greeter-client.1

Because the page is rendered from cli.Command, an option added to a program is in its man page
without anyone remembering to write it there.
"""

from __future__ import annotations

import sys

from greeterd import cli, client, daemon

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

#: Program name -> (command table, manual section, extra sections as (title, paragraphs)).
PAGES: dict[str, tuple[cli.Command, int, list[tuple[str, list[str]]]]] = {
    "greeterd": (
        daemon.COMMAND,
        8,
        [
            (
                "FILES",
                [
                    "/run/greeter.sock: the socket greeter.socket listens on.",
                    "greeter.socket, greeter.service: the systemd units that start greeterd.",
                ],
            ),
            ("SEE ALSO", ["greeter-client(1), systemd.socket(5), sd_listen_fds(3), sd_notify(3)"]),
        ],
    ),
    "greeter-client": (
        client.COMMAND,
        1,
        [
            (
                "ENVIRONMENT",
                ["GREETER_SOCKET: the socket to connect to when --socket is not given."],
            ),
            ("SEE ALSO", ["greeterd(8)"]),
        ],
    ),
}


def escape(text: str) -> str:
    """Make text safe for roff: backslashes and hyphens, and no line starting with . or '."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def render(command: cli.Command, section: int, extra: Sequence[tuple[str, Sequence[str]]]) -> str:
    """The roff source of the man page for ``command``."""
    lines = [
        f'.TH {command.prog.upper()} {section} "" "greeterd {command.version}"',
        ".SH NAME",
        f"{escape(command.prog)} \\- {escape(command.summary)}",
        ".SH SYNOPSIS",
        f".B {escape(command.prog)}",
        "[\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        escape(command.description),
        ".SH OPTIONS",
    ]
    for option in command.options:
        usage = f"\\fB{escape(option.flag)}\\fR"
        if option.metavar:
            usage += f" \\fI{escape(option.metavar)}\\fR"
        lines += [".TP", usage, escape(option.help)]
    lines += [".TP", "\\fB\\-h\\fR, \\fB\\-\\-help\\fR", "Show the help and exit."]
    lines += [".TP", "\\fB\\-\\-version\\fR", "Show the version and exit."]
    lines.append(".SH EXIT STATUS")
    for code, meaning in command.exit_statuses:
        lines += [".TP", f"\\fB{code}\\fR", escape(meaning)]
    for title, paragraphs in extra:
        lines.append(f".SH {title}")
        for index, paragraph in enumerate(paragraphs):
            if index:
                lines.append(".PP")
            lines.append(escape(paragraph))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in PAGES:
        sys.stderr.write(f"usage: python3 -m greeterd.manpage {{{','.join(PAGES)}}}\n")
        return cli.EX_USAGE
    command, section, extra = PAGES[args[0]]
    sys.stdout.write(render(command, section, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
