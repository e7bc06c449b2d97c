"""Which refusals get a log line of their own, and which are folded into a count.

Pure: no I/O and no clock of its own; the server passes the time into each call, so tests are
exact and never sleep.

A refusal is logged as it happens, as long as its peer keeps to a human pace. A flood would
otherwise write one journal line per refusal (84,503 lines in 5 s, measured), and journald's
rate limit would then throw lines away blindly, the useful ones with the rest. So, per peer
uid and reason, the first SINGLES_PER_KEY refusals of a FOLD_WINDOW each get their line; the
rest of that window become one summary line with the count (GREETER_REPEATS=N) when the
window ends. Nothing is lost: the single lines and the repeats add up to the refusals.

What a sustained flood costs, at most, per FOLD_WINDOW: SINGLES_PER_WINDOW single lines in all
(past that budget, refusals are folded even for a new peer) and one summary per key, of which
at most MAX_KEYS are open at once; refusals of further keys are folded under OTHERS, one key
per reason. That is about 100 + 64 + 6 lines per 10 s, 17 lines per second, however many
peers flood.
"""

from __future__ import annotations

#: Seconds a folding window lasts, from the key's first refusal in it. Long enough that a
#: flood costs a handful of lines per window; short enough that a summary arrives while
#: whoever reads the journal still cares.
FOLD_WINDOW = 10.0

#: Refusals of one peer uid and reason logged one line each in a window: a person who
#: mistypes a few times sees every attempt in the log, exactly as without folding.
SINGLES_PER_KEY = 5

#: Single lines in a window across all keys: bounds the lines that many peers at once cost.
SINGLES_PER_WINDOW = 100

#: Keys with an open window at once: bounds memory and the summaries per window. A real host
#: has a few users that fail at the same moment, not 64.
MAX_KEYS = 64

#: The "uid" summaries of the keys past MAX_KEYS are logged under: no single peer. Not a
#: number, so that no real uid (nor -1, a peer whose credentials are unknown) is taken for it.
OTHERS = None


class RefusalFolder:
    """Counts refusals per (uid, reason) in windows; says which to log, and when to summarise."""

    def __init__(
        self,
        window: float = FOLD_WINDOW,
        singles_per_key: int = SINGLES_PER_KEY,
        singles_per_window: int = SINGLES_PER_WINDOW,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.window = window
        self.singles_per_key = singles_per_key
        self.singles_per_window = singles_per_window
        self.max_keys = max_keys
        # (uid, reason) -> [window start, single lines, folded refusals]
        self._open: dict[tuple[int | None, str], list[float]] = {}
        self._budget_start = float("-inf")  # the first refusal opens the first window
        self._budget_left = 0
        #: When the earliest open window ends (a summary may fall due), or None: an attribute,
        #: not a method, because the server's loop reads it on every turn.
        self.next_due: float | None = None

    def refused(self, now: float, uid: int, reason: str) -> bool:
        """Count one refusal; True when it gets a line of its own, False when it is folded into
        the summary at the end of its window."""
        if now >= self._budget_start + self.window:
            self._budget_start, self._budget_left = now, self.singles_per_window
        key: tuple[int | None, str] = (uid, reason)
        counts = self._open.get(key)
        if counts is None:
            if len(self._open) >= self.max_keys:
                key = (OTHERS, reason)
                counts = self._open.get(key)
            if counts is None:
                counts = self._open[key] = [now, 0, 0]
                if self.next_due is None:
                    self.next_due = now + self.window
        if key[0] is not OTHERS and counts[1] < self.singles_per_key and self._budget_left:
            counts[1] += 1
            self._budget_left -= 1
            return True
        counts[2] += 1
        return False

    def __len__(self) -> int:
        """Open windows."""
        return len(self._open)

    def due(self, now: float) -> list[tuple[int | None, str, int]]:
        """Close the windows that have ended by ``now``; return (uid, reason, repeats) for each
        that folded refusals. A key's next refusal opens a new window."""
        ended = [key for key, counts in self._open.items() if now >= counts[0] + self.window]
        return self._close(ended)

    def flush(self) -> list[tuple[int | None, str, int]]:
        """Close every window (the server is stopping): the summaries still owed."""
        return self._close(list(self._open))

    def _close(self, keys: list[tuple[int | None, str]]) -> list[tuple[int | None, str, int]]:
        summaries = []
        for key in keys:
            folded = int(self._open.pop(key)[2])
            if folded:
                summaries.append((key[0], key[1], folded))
        starts = [counts[0] for counts in self._open.values()]
        self.next_due = min(starts) + self.window if starts else None
        return summaries
