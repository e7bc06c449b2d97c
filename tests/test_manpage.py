"""The man pages (manpage.py): rendered from the option tables the programs parse with, escaped
for roff, and read by groff without a warning."""

import subprocess

import pytest

from greeterd import cli, manpage
from tests.support import require_tool

#: The roff requests render() writes; any other line starting with '.' or "'" is text that
#: roff would take for a request.
REQUESTS = {".TH", ".SH", ".TP", ".B", ".PP"}


#: A command whose every text starts the way roff requests do, and holds backslashes.
HOSTILE = cli.Command(
    "prog",
    "1.0",
    ".so /etc/passwd",
    [cli.Option("--in", ".ig until the end", metavar="'PATH")],
    description="'br\\fB bold? \\",
    exit_statuses=[(0, ".ex it")],
)


def page(program: str) -> str:
    """The page of ``program``, one of manpage.PAGES, or "hostile": HOSTILE's."""
    if program == "hostile":
        return manpage.render(HOSTILE, 1, [("NOTES", [".TH x", "'x"])])
    command, section, extra = manpage.PAGES[program]
    return manpage.render(command, section, extra)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("--exit-idle-time", "\\-\\-exit\\-idle\\-time"),
        ("C:\\path", "C:\\epath"),
        (".TH looks like a request", "\\&.TH looks like a request"),
        ("'so does this", "\\&'so does this"),
        ("a.b 'c'", "a.b 'c'"),
    ],
    ids=["hyphens", "backslash", "leading dot", "leading quote", "dot and quote inside"],
)
def test_escape_keeps_text_from_being_read_as_roff(text, escaped):
    """Hyphens become \\- (so they stay hyphens, not breakable dashes), backslashes \\e, and
    a leading '.' or "'" is guarded with \\& so roff does not take the line for a request."""
    assert manpage.escape(text) == escaped


@pytest.mark.parametrize("program", sorted(manpage.PAGES))
def test_every_option_and_exit_status_is_on_the_page(program):
    """The page lists each option of the program's command table with its value name, and
    each exit status: an option added to the program is in its page without more work."""
    command, section, _ = manpage.PAGES[program]
    text = page(program)
    assert text.startswith(f".TH {program.upper()} {section} ")
    for option in command.options:
        usage = f"\\fB{manpage.escape(option.flag)}\\fR"
        if option.metavar:
            usage += f" \\fI{manpage.escape(option.metavar)}\\fR"
        assert usage in text.splitlines(), option.flag
        assert manpage.escape(option.help) in text
    for code, meaning in command.exit_statuses:
        assert f"\\fB{code}\\fR" in text.splitlines()
        assert manpage.escape(meaning) in text


@pytest.mark.parametrize("program", [*sorted(manpage.PAGES), "hostile"])
def test_only_requests_start_with_a_dot(program):
    """Every line that roff would read as a request is one render() meant as a request, also
    when every text on the page starts with '.' or "'"."""
    for line in page(program).splitlines():
        if line.startswith((".", "'")):
            assert line.split()[0] in REQUESTS, line


@pytest.mark.parametrize("program", [*sorted(manpage.PAGES), "hostile"])
def test_groff_reads_the_page_without_a_warning(program):
    """groff -man with every warning on (-ww) formats the page and says nothing: no unknown
    request, no bad escape."""
    require_tool("groff", "apt-get install groff-base")
    done = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-P-cbou"],  # plain text: no SGR, no overstrike
        input=page(program),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    name = HOSTILE.prog if program == "hostile" else program
    assert f"{name.upper()}(" in done.stdout


def test_main_prints_the_page_or_says_how_to_ask(capsys):
    """python3 -m greeterd.manpage PROGRAM prints that page; anything else is EX_USAGE with
    the programs it knows."""
    assert manpage.main(["greeter-client"]) == 0
    assert capsys.readouterr().out == page("greeter-client")
    assert manpage.main(["nope"]) == cli.EX_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "usage: python3 -m greeterd.manpage {greeterd,greeter-client}\n"
