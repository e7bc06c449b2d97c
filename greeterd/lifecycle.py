"""What the server does besides greeting, and when: its timers and its accept gate.

Pure: no I/O and no clock of its own. The server passes the time (time.monotonic()) into each
call, so tests drive both objects with exact times instead of sleeping.

- Timers: when a WATCHDOG=1 ping, a STATUS= update or an idle exit falls due (tally.Duties
  does each), and so how long the loop may sleep in epoll.
- AcceptGate: whether new clients are taken from the kernel, and every reason they are not, by
  name. Each reason is set and cleared in one place, and the gate opens only when none is left.
"""

from __future__ import annotations

import errno

#: Seconds between STATUS= updates to systemd while greetings are being served.
STATUS_INTERVAL = 1.0

#: Seconds after a WATCHDOG=1 that could not be sent (PID 1's notify queue was full) before it
#: is tried again, doubled at each failure in a row up to the watchdog interval. PID 1 empties
#: its queue within milliseconds once it runs, so the ping still lands well inside the limit
#: (WatchdogSec= is twice the interval); where NOTIFY_SOCKET cannot be reached at all, the
#: doubling keeps the retries to a handful per interval.
WATCHDOG_RETRY = 0.01


class Timers:
    """The loop's periodic duties. ``watchdog_interval`` None: no watchdog; ``exit_idle_time``
    0: never exit on idle. Each *_due() method that says yes also schedules the next time."""

    def __init__(
        self,
        now: float,
        *,
        watchdog_interval: float | None,
        status_interval: float = STATUS_INTERVAL,
        exit_idle_time: float,
    ) -> None:
        self.watchdog_interval = watchdog_interval
        self.status_interval = status_interval
        self.exit_idle_time = exit_idle_time
        self.last_activity = now
        self._next_watchdog = now
        self._watchdog_retry = 0.0  # the wait before the next retry; 0: the last ping went
        self._next_status = now

    def activity(self, now: float) -> None:
        """Something happened (a client came or went): the idle time starts again."""
        self.last_activity = now

    def watchdog_due(self, now: float) -> bool:
        if self.watchdog_interval is None or now < self._next_watchdog:
            return False
        self._next_watchdog = now + self.watchdog_interval
        return True

    def watchdog_sent(self, sent: bool, now: float) -> None:
        """Whether the WATCHDOG=1 watchdog_due() asked for went out. One that did not is due
        again WATCHDOG_RETRY from ``now`` (doubled while the failures go on), not an interval
        later: two missed intervals are a kill."""
        if sent or self.watchdog_interval is None:
            self._watchdog_retry = 0.0
            return
        self._watchdog_retry = min(
            max(WATCHDOG_RETRY, 2 * self._watchdog_retry), self.watchdog_interval
        )
        self._next_watchdog = now + self._watchdog_retry

    def status_due(self, now: float, changed: bool) -> bool:
        """A STATUS= update is due when there is news and the last one is old enough."""
        if not changed or now < self._next_status:
            return False
        self._next_status = now + self.status_interval
        return True

    def idle_due(self, now: float, idle: bool) -> bool:
        """Exit on idle is due when ``idle`` (nothing in flight) has lasted exit_idle_time."""
        return self._idle_enabled(idle) and now >= self.last_activity + self.exit_idle_time

    def next_due(self, status_changed: bool, idle: bool) -> float | None:
        """The earliest time one of the duties can fall due, or None for none at all."""
        due = []
        if self.watchdog_interval is not None:
            due.append(self._next_watchdog)
        if status_changed:
            due.append(self._next_status)
        if self._idle_enabled(idle):
            due.append(self.last_activity + self.exit_idle_time)
        return min(due) if due else None

    def _idle_enabled(self, idle: bool) -> bool:
        return self.exit_idle_time > 0 and idle


#: Seconds accepting pauses after the kernel runs out of fds or memory (OUT_OF_RESOURCES): the
#: pending connection stays readable, so retrying at once would spin at 100% CPU. trio's
#: serve_listeners uses the same 100 ms.
ACCEPT_BACKOFF = 0.1

#: accept() errors that mean "out of resources": named, logged and survived (any other is a
#: real fault and surfaces).
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

#: Why the gate is closed: as many clients wait for their names as the server will hold.
AT_CAP = "at the client cap"
#: accept() ran out of fds or memory; the gate reopens at AcceptGate.resume_at.
BACKING_OFF = "backing off"
#: The server is draining; nothing reopens the gate.
STOPPING = "stopping"


class AcceptGate:
    """Whether the server takes new clients from the kernel (they wait in the listen backlog
    meanwhile), and why not."""

    def __init__(self) -> None:
        self.reasons: set[str] = set()
        #: No reason left: an attribute, not a property, because the accept loop reads it
        #: after every client.
        self.open = True
        #: When BACKING_OFF ends, if it is set.
        self.resume_at: float | None = None
        #: accept() failures since the last accept() that worked.
        self.failures = 0

    def close(self, reason: str) -> bool:
        """Add ``reason``; return whether that closed an open gate."""
        was_open = self.open
        self.reasons.add(reason)
        self.open = False
        return was_open

    def reopen(self, reason: str) -> bool:
        """Remove ``reason``; return whether that opened the gate. STOPPING stays for good."""
        if reason == STOPPING or reason not in self.reasons:
            return False
        self.reasons.discard(reason)
        self.open = not self.reasons
        return self.open

    def back_off(self, until: float) -> bool:
        """An accept() failed for want of resources: count it and close for BACKING_OFF until
        ``until`` (ACCEPT_BACKOFF from now); return whether that closed an open gate."""
        self.failures += 1
        self.resume_at = until
        return self.close(BACKING_OFF)

    def accepted(self) -> int:
        """An accept() worked: return how many failed before it (0 nearly always)."""
        failures, self.failures = self.failures, 0
        return failures

    def back_off_over(self, now: float) -> bool:
        """If a back-off has run its time, end it; return whether that opened the gate."""
        if self.resume_at is None or now < self.resume_at:
            return False
        self.resume_at = None
        return self.reopen(BACKING_OFF)
