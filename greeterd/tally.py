"""What the server has done, counted, and the one place a refusal becomes a log line.

Line clients, Varlink calls and datagrams each count their greetings here and report their
refusals here, so STATUS=, the stop line and the journal agree whichever way a request came,
and folding (folding.py) sees every refusal of a peer, on any endpoint.
"""

from __future__ import annotations

import sys

from greeterd import protocol
from greeterd.folding import OTHERS, RefusalFolder
from greeterd.speedups import sockets

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from greeterd.log import Log

#: (pid, uid, gid) of a peer whose credentials the kernel did not give.
UNKNOWN_PEER = (-1, -1, -1)


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
        self._folder = RefusalFolder()

    @property
    def next_due(self) -> float | None:
        """When the next folded summary is due, if one is pending."""
        return self._folder.next_due

    def refusal(self, peer: tuple[int, int, int], reason: str, received: bytes | str) -> None:
        """Count a refusal and log it, or fold it into its uid's summary (folding.py)."""
        pid, uid, gid = peer
        self.refused += 1
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
        self._log_summaries(self._folder.due(now))

    def flush(self) -> None:
        """Log every pending summary: the server is stopping."""
        self._log_summaries(self._folder.flush())

    def _log_summaries(self, summaries: list[tuple[int | None, str, int]]) -> None:
        for uid, reason, repeats in summaries:
            who = "other peers" if uid is OTHERS else f"uid {uid}"
            self._log.notice(
                f"refused {repeats} more requests from {who} within "
                f"{self._folder.window:g}s: {reason} (GREETER_REPEATS={repeats})",
                reason=reason,
                peer_uid="other" if uid is OTHERS else uid,
                repeats=repeats,
            )


def peer_credentials(sock: sockets.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of a connected client, from SO_PEERCRED, or UNKNOWN_PEER."""
    try:
        return ucred(sock.getsockopt(sockets.SOL_SOCKET, sockets.SO_PEERCRED, 12))
    except OSError:
        return UNKNOWN_PEER


def ucred(raw: bytes) -> tuple[int, int, int]:
    """(pid, uid, gid) from a struct ucred (SO_PEERCRED, SCM_CREDENTIALS)."""
    pid, uid, gid = (int.from_bytes(raw[i : i + 4], sys.byteorder, signed=True) for i in (0, 4, 8))
    return pid, uid, gid


def describe_peer(sock: sockets.socket) -> str:
    """'pid 42 uid 1000', for debug lines."""
    pid, uid, _ = peer_credentials(sock)
    return f"pid {pid} uid {uid}"
