"""The command-line table both programs parse with."""

import pytest

from greeterd import cli, client, daemon


class Settings:
    socket = "/run/greeter.sock"
    timeout = 10.0
    verbose = False


COMMAND = cli.Command(
    "prog",
    "1.2.3",
    "Does a thing.",
    [
        cli.Option("--socket", "where", metavar="PATH"),
        cli.Option("--timeout", "how long", metavar="SECONDS", convert=cli.seconds),
        cli.Option("--verbose", "say more"),
    ],
    description="Longer words about the thing.",
    exit_statuses=[(0, "fine")],
)


def parsed(*argv: str) -> Settings:
    settings = Settings()
    COMMAND.parse(argv, settings)
    return settings


def test_defaults_stand_when_nothing_is_given():
    """An empty command line leaves every default."""
    settings = parsed()
    assert (settings.socket, settings.timeout, settings.verbose) == (
        "/run/greeter.sock",
        10.0,
        False,
    )


@pytest.mark.parametrize(
    "argv", [["--socket", "/x", "--timeout", "2.5"], ["--socket=/x", "--timeout=2.5"]]
)
def test_values_come_as_separate_or_joined_arguments(argv):
    """--opt VALUE and --opt=VALUE mean the same; values are converted."""
    settings = parsed(*argv)
    assert (settings.socket, settings.timeout) == ("/x", 2.5)


def test_flags_take_no_value():
    """A flag is set by its presence and refuses =VALUE."""
    assert parsed("--verbose").verbose is True
    with pytest.raises(cli.UsageError, match="takes no value"):
        parsed("--verbose=yes")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nope"], "unknown argument '--nope'"),
        (["--socket"], "--socket needs a value"),
        (["--timeout", "soon"], "'soon' is not a number of seconds"),
        (["--timeout", "-1"], "zero seconds or more"),
        (["--timeout", "nan"], "zero seconds or more"),
        (["--timeout", "1e10"], "more than 1,000,000 seconds"),  # epoll would overflow
        (["name"], "unknown argument 'name'"),
    ],
)
def test_bad_command_lines_say_what_is_wrong(argv, message):
    """Each mistake is a UsageError whose message names it."""
    with pytest.raises(cli.UsageError, match=message):
        parsed(*argv)


@pytest.mark.parametrize("text", ["worker-2", "a", "web@eu.1_x", "w" * 64])
def test_a_process_name_is_what_a_unit_instance_may_be(text):
    """--name takes letters, digits and @._- (what %i holds), 1 to 64 of them."""
    assert cli.name(text) == text


@pytest.mark.parametrize("text", ["", "w" * 65, "worker 2", "two\nlines", "wörker", "a:b"])
def test_a_process_name_that_would_garble_a_log_line_is_refused(text):
    """Spaces, newlines, colons, non-ASCII, empty or over 64: refused with what is allowed."""
    with pytest.raises(ValueError, match="letters, digits"):
        cli.name(text)


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_every_option_and_exit_status(flag):
    """--help shows usage, the description, all options and the exit statuses."""
    with pytest.raises(cli.Exit) as done:
        parsed(flag)
    text = done.value.text
    for expected in [
        "usage: prog [OPTIONS]",
        "--socket PATH",
        "--timeout SECONDS",
        "--verbose",
        "0   fine",
    ]:
        assert expected in text
    assert max(len(line) for line in text.splitlines()) <= cli.HELP_WIDTH


def test_version_names_program_and_version():
    """--version prints 'prog VERSION'."""
    with pytest.raises(cli.Exit) as done:
        parsed("--version")
    assert done.value.text == "prog 1.2.3\n"


@pytest.mark.parametrize(
    "command", [daemon.COMMAND, client.COMMAND], ids=["greeterd", "greeter-client"]
)
def test_real_help_texts_fit_a_terminal(command):
    """Both programs' --help stay within HELP_WIDTH columns."""
    assert max(len(line) for line in command.help().splitlines()) <= cli.HELP_WIDTH
