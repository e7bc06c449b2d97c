"""What the server has done, counted; the one place a refusal becomes a log line; and what the
loop does on the clock besides serving (Duties).

Line clients, Varlink calls and datagrams are all answered by lines.answer(), which counts
each greeting here and reports each refusal here, so STATUS=, the stop line and the journal
agree whichever way a request came, and folding (folding.py) sees every refusal of a peer, on
any endpoint. A refusal comes with its peer's credentials as numbers: asking a socket for them
is lines.py's business. folding.py is imported by load_folding(), which greeterd calls once the
clients that woke it are served, so a cold start's first greeting does not pay for it.

Duties are the I/O side of lifecycle.Timers (which only says when): the WATCHDOG=1 ping, STATUS=
with the counts, the folded summaries, and the exit on idle.
"""

from __future__ import annotations

from greeterd import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from greeterd.folding import RefusalFolder
    from greeterd.log import Log
    from greeterd.server import Server


class Tally:
    """Greetings, refusals and clients lost, with the refusals logged or folded into counts.

    The loop reads ``next_due`` (when a folded summary is due) on every wake-up, and calls
    summarise() once it has passed.
    """

    def __init__(self, log: Log, clock: Callable[[], float]) -> None:
        self.greeted = 0
        self.refused = 0
        self.lost = 0  # clients that left before an answer could reach them
        self._log = log
        self._clock = clock
        self._folder: RefusalFolder | None = None  # made by load_folding()
        self._reported = (0, 0)  # (greeted, refused) in the last report()

    def load_folding(self) -> RefusalFolder:
        """Import folding.py, which the first greeting need not wait for: greeterd calls this
        once the clients that woke it are served. Not at the first refusal: under a flood
        greeterd may be out of fds (EMFILE) just then, and a failed import would end it."""
        if self._folder is None:
            from greeterd.folding import RefusalFolder  # noqa: PLC0415 (after the first greetings)

            self._folder = RefusalFolder()
        return self._folder

    @property
    def next_due(self) -> float | None:
        """When the next folded summary is due, if one is pending."""
        return None if self._folder is None else self._folder.next_due

    def refusal(self, peer: tuple[int, int, int], reason: str, received: bytes | str) -> None:
        """Count a refusal and log it, or fold it into its uid's summary (folding.py)."""
        pid, uid, gid = peer
        self.refused += 1
        # load_folding() imports folding.py only for a refusal before greeterd called it: among
        # the clients that woke it, or with Accept=yes, which never calls it.
        if not self.load_folding().refused(self._clock(), uid, reason):
            return
        described = protocol.describe(received)
        self._log.notice(
            f"refused request from pid {pid} uid {uid}: {reason}: {described}",
            reason=reason,
            peer_pid=pid,
            peer_uid=uid,
            peer_gid=gid,
            received=described,
        )

    def summarise(self, now: float) -> None:
        """Log the summaries whose window has ended by ``now``."""
        if self._folder is not None:
            self._log_summaries(self._folder, self._folder.due(now))

    def flush(self) -> None:
        """Log every pending summary: the server is stopping."""
        if self._folder is not None:
            self._log_summaries(self._folder, self._folder.flush())

    def _log_summaries(
        self, folder: RefusalFolder, summaries: list[tuple[int | None, str, int]]
    ) -> None:
        from greeterd.folding import OTHERS  # noqa: PLC0415 (loaded with the folder)

        for uid, reason, repeats in summaries:
            who = "other peers" if uid is OTHERS else f"uid {uid}"
            self._log.notice(
                f"refused {repeats} more requests from {who} within "
                f"{folder.window:g}s: {reason} (GREETER_REPEATS={repeats})",
                reason=reason,
                peer_uid="other" if uid is OTHERS else uid,
                repeats=repeats,
            )

    def status(self, waiting: int) -> str:
        """One line on what the server has done, for STATUS= and the log."""
        return f"{self.greeted} greeted, {self.refused} refused, {waiting} waiting"

    @property
    def news(self) -> bool:
        """Greetings or refusals since the last report()."""
        return self._reported != (self.greeted, self.refused)

    def report(self, waiting: int) -> str:
        """status(), remembered as reported: no news until the counts change again."""
        self._reported = (self.greeted, self.refused)
        return self.status(waiting)


class Duties:
    """What the server does when lifecycle.Timers says it is due (the loop runs them at every
    wake-up): WATCHDOG=1, sent again soon if dropped; STATUS= when the counts changed; the exit
    on idle, after a re-check; and the folded summaries whose window has ended."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._timers = server.timers
        self._tally = server.tally
        self._notify = server.notify

    def next_due(self) -> float | None:
        """The earliest time one of the duties can fall due, or None for none at all."""
        due = (self._timers.next_due(self._tally.news, self._idle()), self._tally.next_due)
        return min((when for when in due if when is not None), default=None)

    def run(self, now: float) -> None:
        """Do each duty that is due at ``now``."""
        timers, tally = self._timers, self._tally
        if timers.watchdog_due(now):
            # notify() returns False for a message it dropped (PID 1's queue was full).
            timers.watchdog_sent(self._notify("WATCHDOG=1") is not False, now)
        if timers.status_due(now, tally.news):
            self._notify(f"STATUS={tally.report(self._server.waiting)}")
        if timers.idle_due(now, self._idle()):
            self._exit_if_idle()
        due = tally.next_due
        if due is not None and now >= due:
            tally.summarise(now)

    def _idle(self) -> bool:
        """Nothing in flight: an idle exit would strand no one."""
        return not self._server.stopping and not self._server.waiting_clients

    def _exit_if_idle(self) -> None:
        # Re-check: a client that connected since the last wake-up is served, not stranded.
        # One that connects after this stays queued, and systemd starts the next instance.
        before = self._timers.last_activity
        self._server.wake_up_every_endpoint()
        if self._server.waiting_clients or self._timers.last_activity != before:
            return
        self._server.stop(f"idle for {self._timers.exit_idle_time:g}s")
