"""``greeterd``: take the socket systemd passes (or bind one), tell systemd we are ready, serve.

Only what the first greeting needs is imported before it is sent: no argparse, logging,
asyncio, typing, os or systemd-python, and the C halves of socket and signal (speedups.py says
why; docs/performance.md). The sd_notify(3) lifecycle: READY=1 once the socket
is adopted, STATUS= while serving, STOPPING=1 on SIGTERM or exit-on-idle; exit 0 after a drain.
"""

from __future__ import annotations

import sys

from greeterd import __version__, activation, cli, log, outlets, protocol, server
from greeterd.speedups import SIGINT, SIGTERM, environment, set_wakeup_fd, signal, syscalls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

# sysexits.h codes, as listed by --help.
EX_OK = 0
EX_CANTCREAT = 73
EX_UNAVAILABLE = 69
EX_CONFIG = 78

#: Default for --exit-idle-time: stay up for good unless asked (the unit asks).
DEFAULT_EXIT_IDLE_TIME = 0.0

#: The signals that make greeterd drain and exit (routed to the loop's wakeup fd), with the
#: names the stop is logged with; the signal module's enum would cost start-up time.
STOP_SIGNALS: dict[int, str] = {SIGTERM: "SIGTERM", SIGINT: "SIGINT"}


class Settings:
    """What the command line sets; defaults as in --help."""

    socket = protocol.DEFAULT_SOCKET
    exit_idle_time = DEFAULT_EXIT_IDLE_TIME
    log_level = "info"
    name = ""


def _description() -> str:
    """--help's paragraph. It quotes folding.py's limits, and folding.py is not loaded at start
    (tally.load_folding()): so is this."""
    from greeterd import folding  # noqa: PLC0415 (only for --help and the man page)

    return (
        "Started by systemd through greeter.socket, greeterd adopts the sockets systemd passes "
        "(LISTEN_FDS, named by LISTEN_FDNAMES) and only accepts and answers on them: listening "
        "stream and seqpacket sockets, datagram sockets, or with Accept=yes one connection "
        "(named 'connection'), after which it exits; a listening socket named 'varlink' "
        "speaks Varlink (io.greeterd.Greeter). Otherwise it binds --socket itself. "
        "Each client has "
        f"{server.READ_TIMEOUT:g} s from connecting to send a name of at most "
        f"{protocol.MAX_NAME_BYTES} bytes; at most {server.MAX_CONNECTIONS} clients are served "
        "at once and more wait in the socket's backlog. At most "
        f"{server.MAX_CLIENTS_PER_UID} of them may be one user's (uid; root and greeterd's "
        "own uid are exempt): that user's next client that would wait is refused at once, so "
        "one user cannot keep the others waiting. Logs go to the journal under systemd, "
        "to standard error otherwise, and never make greeterd wait: a line that cannot be "
        "written at once is counted, and the next one says how many were lost. Past "
        f"{folding.SINGLES_PER_KEY} refusals of one uid and reason in {folding.FOLD_WINDOW:g} s, "
        "the rest of that time become one line with their count. SIGTERM stops accepting, "
        "finishes the clients in flight and exits 0."
    )


COMMAND = cli.Command(
    "greeterd",
    __version__,
    "Answer each client on a UNIX socket with 'Hello, NAME'.",
    [
        cli.Option(
            "--socket",
            "socket to bind when systemd passes none (when it does, this is ignored); "
            f"default {protocol.DEFAULT_SOCKET}",
            metavar="PATH",
            convert=cli.path,
        ),
        cli.Option(
            "--exit-idle-time",
            "when socket-activated, exit after this long with no client (systemd starts "
            "greeterd again on the next one); 0 never exits; default 0",
            metavar="SECONDS",
            convert=cli.seconds,
        ),
        cli.Option(
            "--name",
            "begin STATUS= and every log line with NAME, to tell apart processes that share "
            "one socket (greeter-worker@N.service passes worker-N); default none",
            metavar="NAME",
            convert=cli.name,
        ),
        cli.Option(
            "--log-level",
            "least important lines logged: error, warning, notice (refused requests), info, "
            "debug (every greeting); default info",
            metavar="LEVEL",
            convert=cli.choice(*log.LEVELS),
        ),
    ],
    description=_description,
    exit_statuses=[
        (EX_OK, "stopped by SIGTERM or after --exit-idle-time"),
        (cli.EX_USAGE, "bad command line"),
        (
            EX_UNAVAILABLE,
            "NOTIFY_SOCKET is not an AF_UNIX address (vsock) and systemd-python is missing",
        ),
        (EX_CANTCREAT, "cannot bind --socket (in use, not a socket, no permission)"),
        (cli.EX_IOERR, "--help or --version could not be written to standard output"),
        (
            EX_CONFIG,
            "systemd passed a socket greeterd cannot serve, or a bad LISTEN_FDS or WATCHDOG_USEC",
        ),
    ],
)


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings()
    status = COMMAND.parse_or_exit(argv, settings)
    if status is not None:
        return status
    environ = environment()
    to_journal = activation.stderr_is_journal(environ)
    outlet = outlets.JournalOutlet() if to_journal else outlets.StreamOutlet()
    logger = log.Log(log.LEVELS[settings.log_level], outlet, settings.name)
    try:
        inherited = activation.inherited_endpoints(environ)
        watchdog = activation.watchdog_interval(environ, syscalls.getpid())
    except activation.ActivationError as error:
        logger.error(f"cannot start: {error}")
        return EX_CONFIG
    try:
        notify = outlets.Notifier(activation.notify_address(environ), settings.name)
    except outlets.NotifyUnavailable as error:
        logger.error(f"cannot start: {error}")
        return EX_UNAVAILABLE
    if inherited:
        return _serve(inherited, settings.exit_idle_time, watchdog, notify, logger)
    try:
        bound = activation.BoundListener(settings.socket)
    except activation.ActivationError as error:
        logger.error(f"cannot start: {error}")
        return EX_CANTCREAT
    try:
        # Nobody would start greeterd again after an idle exit, so it never exits on idle here.
        return _serve([bound.endpoint], 0.0, watchdog, notify, logger)
    finally:
        bound.close()


def _serve(
    endpoints: Sequence[activation.Endpoint],
    exit_idle_time: float,
    watchdog: float | None,
    notify: outlets.Notifier,
    logger: log.Log,
) -> int:
    greeter = server.Server(
        endpoints,
        logger,
        notify,
        exit_idle_time=exit_idle_time,
        watchdog_interval=watchdog,
        exempt_uids=share_exempt_uids(syscalls.getuid()),
    )
    read_fd, write_fd = syscalls.pipe2(syscalls.O_NONBLOCK | syscalls.O_CLOEXEC)
    set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for signum in STOP_SIGNALS:
        signal(signum, _wake_loop)
    greeter.listeners.watch_wakeup_fd(read_fd, STOP_SIGNALS)
    where = ", ".join(endpoint.describe() for endpoint in endpoints)
    notify(f"READY=1\nSTATUS=Greeting on {where}")
    if all(endpoint.kind == activation.CONNECTION for endpoint in endpoints):
        greeter.run()  # Accept=yes: this process serves one client, with fds to spare
    else:
        greeter.run(then=lambda: _after_first_greetings(greeter, logger))
    notify.close()
    return EX_OK


def share_exempt_uids(own_uid: int) -> tuple[int, ...]:
    """The users whose clients are not held to server.MAX_CLIENTS_PER_UID: root, who can stop
    greeterd or kill a flood outright, so a share would protect no one from it and would only
    turn away an administrator's own checks and load tests; and the uid greeterd runs as: in a
    user's own instance every client is its owner, whom a share would give a quarter of the
    places and no one else the rest. (The system unit's greeterd runs as a dynamic user no
    client has.)"""
    return (0, own_uid) if own_uid else (0,)


def _after_first_greetings(greeter: server.Server, logger: log.Log) -> None:
    """What the clients that woke greeterd need not wait for: the open-files limit raised and
    the share fitted to it, and the refusal folding loaded while there are fds to load it with."""
    greeter.held.fit_to_open_files(_raise_fd_limit(logger))
    greeter.tally.load_folding()


def _raise_fd_limit(logger: log.Log) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one, so greeterd can hold MAX_CONNECTIONS;
    return the limit it has.

    systemd starts services with a soft limit of 1024 (for select()'s sake) and a high hard
    limit, and expects programs that use epoll to raise it themselves. Where even the hard limit
    is low, or a seccomp filter forbids setrlimit(), greeterd runs with what it has: past the
    limit, accept() fails with EMFILE and the server backs off until clients leave.

    It runs once the clients that woke greeterd are served: they need not wait for the
    import of ``resource`` (an extension module, loaded from disk).
    """
    import resource  # noqa: PLC0415 (after the first greetings: docs/performance.md)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except OSError as error:
        why = error.strerror or str(error)
    except ValueError:  # Python's word for EPERM, which a seccomp filter returns
        why = "setrlimit() not permitted"
    else:
        return hard
    logger.notice(f"keeping {soft} open files at most: cannot raise the limit ({why})")
    return soft


def _wake_loop(signum: int, frame: object) -> None:
    """Python-level no-op: the C handler already wrote the signal number to the wake-up fd."""


if __name__ == "__main__":
    sys.exit(main())
