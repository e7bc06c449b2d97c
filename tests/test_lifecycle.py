"""The server's timers and accept gate, driven with exact times: no sleeping, no threads."""

from greeterd.lifecycle import (
    AT_CAP,
    BACKING_OFF,
    STOPPING,
    WATCHDOG_RETRY,
    AcceptGate,
    Timers,
)


def timers(**settings: float | None) -> Timers:
    chosen: dict[str, float | None] = {
        "watchdog_interval": None,
        "status_interval": 1.0,
        "exit_idle_time": 0.0,
    }
    chosen.update(settings)
    return Timers(0.0, **chosen)  # type: ignore[arg-type]


def times_due(check, until: int, step_ms: int = 100) -> list[float]:
    """The times, every step_ms from 0 to ``until`` seconds, at which ``check(now)`` said yes."""
    return [ms / 1000 for ms in range(0, until * 1000 + 1, step_ms) if check(ms / 1000)]


def test_the_watchdog_pings_at_start_and_then_every_interval():
    """WATCHDOG=1 falls due at once and then exactly every watchdog_interval."""
    clock = timers(watchdog_interval=2.5)
    assert times_due(clock.watchdog_due, 10) == [0.0, 2.5, 5.0, 7.5, 10.0]


def test_a_late_wake_up_pings_once_and_counts_the_interval_from_then():
    """A loop that wakes late pings once, not once per missed interval."""
    clock = timers(watchdog_interval=2.5)
    assert clock.watchdog_due(0.0)
    assert clock.watchdog_due(6.0)
    assert not clock.watchdog_due(8.4)
    assert clock.watchdog_due(8.5)


def test_a_ping_that_could_not_be_sent_is_due_again_soon_then_less_often():
    """A WATCHDOG=1 that did not go out is due again WATCHDOG_RETRY later, the wait doubling
    while sending keeps failing, never past the interval; one that goes out puts the pings
    back on the interval, and the next failure starts the retries afresh."""
    clock = timers(watchdog_interval=2.5)
    assert clock.watchdog_due(0.0)
    now, waits = 0.0, []
    for _ in range(12):
        clock.watchdog_sent(False, now)
        due = clock.next_due(status_changed=False, idle=False)
        assert due is not None
        waits.append(round(due - now, 6))
        now = due
        assert clock.watchdog_due(now)
    assert waits[:3] == [WATCHDOG_RETRY, 2 * WATCHDOG_RETRY, 4 * WATCHDOG_RETRY]
    assert max(waits) == 2.5
    assert waits[-1] == 2.5
    clock.watchdog_sent(True, now)
    assert clock.next_due(status_changed=False, idle=False) == now + 2.5
    assert clock.watchdog_due(now + 2.5)
    clock.watchdog_sent(False, now + 2.5)
    assert clock.next_due(status_changed=False, idle=False) == now + 2.5 + WATCHDOG_RETRY


def test_without_a_watchdog_nothing_falls_due_and_the_loop_may_sleep():
    """No watchdog, no news, no idle exit: next_due() is None (epoll waits for ever)."""
    clock = timers()
    assert not clock.watchdog_due(100.0)
    assert clock.next_due(status_changed=False, idle=True) is None


def test_status_is_sent_only_with_news_and_at_most_once_per_interval():
    """STATUS= falls due when something changed, at most every status_interval."""
    clock = timers(status_interval=1.0)
    assert times_due(lambda now: clock.status_due(now, changed=True), 3, 250) == [0, 1, 2, 3]
    quiet = timers(status_interval=1.0)
    assert times_due(lambda now: quiet.status_due(now, changed=False), 3) == []


def test_idle_exit_falls_due_after_exit_idle_time_without_activity():
    """Idle exit is due exit_idle_time after the last activity, and only while idle."""
    clock = timers(exit_idle_time=30.0)
    assert not clock.idle_due(29.9, idle=True)
    assert clock.idle_due(30.0, idle=True)
    clock.activity(12.0)
    assert not clock.idle_due(41.9, idle=True)
    assert clock.idle_due(42.0, idle=True)
    assert not clock.idle_due(100.0, idle=False), "a client in flight keeps it up"
    assert not timers(exit_idle_time=0.0).idle_due(1e9, idle=True), "0 means never"


def test_next_due_is_the_earliest_duty():
    """The loop sleeps until the first of watchdog, status and idle exit."""
    clock = timers(watchdog_interval=5.0, status_interval=1.0, exit_idle_time=3.0)
    assert clock.watchdog_due(0.0)
    assert clock.next_due(status_changed=True, idle=True) == 0.0  # status never sent yet
    assert clock.status_due(0.0, changed=True)
    assert clock.next_due(status_changed=True, idle=True) == 1.0
    assert clock.next_due(status_changed=False, idle=True) == 3.0
    assert clock.next_due(status_changed=False, idle=False) == 5.0


def test_the_gate_opens_only_when_every_reason_is_gone():
    """Closed at the cap and backing off at once, the gate opens when both have ended."""
    gate = AcceptGate()
    assert gate.open
    assert gate.close(AT_CAP) is True
    assert gate.back_off(until=2.0) is False, "already closed"
    assert gate.reasons == {AT_CAP, BACKING_OFF}
    assert gate.reopen(AT_CAP) is False
    assert not gate.back_off_over(1.9)
    assert gate.back_off_over(2.0) is True
    assert gate.open
    assert gate.resume_at is None


def test_stopping_closes_the_gate_for_good():
    """Nothing reopens a stopping server's gate: not the cap, not a back-off."""
    gate = AcceptGate()
    gate.close(AT_CAP)
    gate.close(STOPPING)
    gate.back_off(until=1.0)
    assert gate.reopen(AT_CAP) is False
    assert gate.back_off_over(5.0) is False
    assert gate.reopen(STOPPING) is False
    assert gate.reasons == {STOPPING}


def test_reopening_for_a_reason_that_was_not_set_changes_nothing():
    """A client leaving while the gate is open (or closed for another reason) does not open
    it: the server calls reopen(AT_CAP) on every departure."""
    gate = AcceptGate()
    assert gate.reopen(AT_CAP) is False
    gate.back_off(until=1.0)
    assert gate.reopen(AT_CAP) is False
    assert not gate.open
