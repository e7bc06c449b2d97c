"""What the server has done, counted, and the one place a refusal becomes a log line.

Line clients, Varlink calls and datagrams are all answered by lines.answer(), which counts
each greeting here and reports each refusal here, so STATUS=, the stop line and the journal
agree whichever way a request came, and folding (folding.py) sees every refusal of a peer, on
any endpoint. A refusal comes with its peer's credentials as numbers: asking a socket for them
is lines.py's business. folding.py is imported at the first refusal, so a start that refuses
no one does not pay for it.
"""

from __future__ import annotations

from greeterd import protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from greeterd.folding import RefusalFolder
    from greeterd.log import Log


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
        self._folder: RefusalFolder | None = None  # made at the first refusal
        self._reported = (0, 0)  # (greeted, refused) in the last report()

    def load_folding(self) -> None:
        """Import folding.py now, once the first clients are served: at the first refusal
        greeterd may be out of fds (EMFILE), and an import then fails and ends greeterd."""
        if self._folder is None:
            from greeterd.folding import RefusalFolder  # noqa: PLC0415 (after start-up)

            self._folder = RefusalFolder()

    @property
    def next_due(self) -> float | None:
        """When the next folded summary is due, if one is pending."""
        return None if self._folder is None else self._folder.next_due

    def refusal(self, peer: tuple[int, int, int], reason: str, received: bytes | str) -> None:
        """Count a refusal and log it, or fold it into its uid's summary (folding.py)."""
        pid, uid, gid = peer
        self.refused += 1
        if self._folder is None:
            from greeterd.folding import RefusalFolder  # noqa: PLC0415 (at the first refusal)

            self._folder = RefusalFolder()
        if not self._folder.refused(self._clock(), uid, reason):
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
