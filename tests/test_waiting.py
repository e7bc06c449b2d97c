"""The waiting clients' bookkeeping: pure values, no sockets."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greeterd.waiting import DEADLINE_SLACK, WaitingClients


def test_a_waiting_client_is_known_by_its_fd_with_its_mode_and_bytes():
    """add() records the fd, how it speaks and what it sent; remove() forgets all of it."""
    waiting = WaitingClients()
    waiting.add(7, 10.0, message_mode=True, received=b"Zo")
    assert 7 in waiting
    assert 6 not in waiting
    assert 700 not in waiting
    assert len(waiting) == 1
    assert waiting.message_mode(7) is True
    assert waiting.received(7) == b"Zo"
    waiting.set_received(7, b"Zo\xc3")
    assert waiting.received(7) == b"Zo\xc3"
    waiting.remove(7)
    assert 7 not in waiting
    assert len(waiting) == 0
    assert waiting.next_deadline() is None


def test_deadlines_come_due_in_arrival_order():
    """first_expired() names the oldest client whose time is up, and none before its time."""
    waiting = WaitingClients()
    for fd, deadline in ((5, 1.0), (3, 2.0), (9, 3.0)):
        waiting.add(fd, deadline, message_mode=False, received=b"")
    assert waiting.next_deadline() == 1.0
    assert waiting.first_expired(0.5) is None
    assert waiting.first_expired(2.5) == 5
    waiting.remove(5)
    assert waiting.first_expired(2.5) == 3
    waiting.remove(3)
    assert waiting.first_expired(2.5) is None
    assert waiting.next_deadline() == 3.0


def test_a_shorter_deadline_in_another_lane_is_not_held_back_by_a_longer_one():
    """Deadlines of two timeouts arrive out of order; each lane keeps its own order, so the
    earliest deadline comes due first whichever lane it is in."""
    waiting = WaitingClients(lanes=2)
    waiting.add(5, 10.0, message_mode=False, received=b"", lane=1)  # a long timeout, first
    waiting.add(3, 6.0, message_mode=False, received=b"")  # a shorter one, after it
    assert waiting.next_deadline() == 6.0
    assert waiting.first_expired(7.0) == 3
    waiting.remove(3)
    assert waiting.first_expired(7.0) is None
    assert waiting.first_expired(10.0) == 5


def test_a_renewed_deadline_replaces_the_old_one():
    """renew() moves a waiting client's deadline, into another lane if asked: the old one no
    longer cuts it off, and what it sent and how it speaks are kept."""
    waiting = WaitingClients(lanes=2)
    waiting.add(4, 1.0, message_mode=True, received=b"Zo")
    waiting.renew(4, 5.0, lane=1)
    assert len(waiting) == 1
    assert waiting.next_deadline() == 5.0
    assert waiting.first_expired(2.0) is None
    assert waiting.first_expired(5.0) == 4
    assert waiting.received(4) == b"Zo"
    assert waiting.message_mode(4) is True
    with pytest.raises(ValueError, match="fd 9 is not waiting"):
        waiting.renew(9, 6.0)


def test_a_client_that_left_is_skipped_even_when_its_fd_is_reused():
    """The kernel reuses fds: the old deadline entry must not cut off the new client."""
    waiting = WaitingClients()
    waiting.add(4, 1.0, message_mode=False, received=b"")
    waiting.add(6, 1.5, message_mode=False, received=b"")  # keeps the tables in use
    waiting.remove(4)
    waiting.add(4, 2.0, message_mode=False, received=b"")  # a new client on the same fd
    assert waiting.first_expired(1.2) is None
    assert waiting.first_expired(1.6) == 6
    waiting.remove(6)
    assert waiting.first_expired(1.9) is None
    assert waiting.first_expired(2.0) == 4


def test_adding_an_fd_twice_is_a_bug_not_a_silent_overwrite():
    """add() of an fd that is already waiting raises ValueError naming it, instead of
    replacing the first deadline and leaving a stale entry behind."""
    waiting = WaitingClients()
    waiting.add(3, 1.0, message_mode=False, received=b"")
    with pytest.raises(ValueError, match="fd 3 is already waiting"):
        waiting.add(3, 2.0, message_mode=False, received=b"")


def test_the_queue_stays_bounded_while_clients_come_and_go():
    """With one client waiting throughout, 100,000 others that come and go leave at most
    twice the live entries plus DEADLINE_SLACK in the queue."""
    waiting = WaitingClients()
    waiting.add(3, 1e9, message_mode=False, received=b"")
    for n in range(100_000):
        waiting.add(4 + n % 50, float(n), message_mode=False, received=b"x")
        if n % 50 == 49:
            for fd in range(4, 54):
                waiting.remove(fd)
        assert waiting.queued() <= 2 * len(waiting) + DEADLINE_SLACK + 1
    assert len(waiting) == 1
    assert waiting.next_deadline() == 1e9


def test_everything_is_dropped_when_the_last_client_leaves():
    """The tables shrink back to nothing, which is how idle clients' memory goes back."""
    waiting = WaitingClients()
    for fd in range(5000):
        waiting.add(fd, 1.0, message_mode=False, received=b"")
    for fd in range(5000):
        waiting.remove(fd)
    assert waiting.queued() == 0
    assert waiting._deadline_by_fd.nbytes == 0


@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "remove", "expire"]), st.integers(0, 40)),
        max_size=200,
    )
)
def test_it_agrees_with_a_plain_dict_of_deadlines(operations):
    """Any sequence of arrivals, departures and expiries gives the answers a dict would."""
    waiting, model = WaitingClients(), {}
    clock = 0.0
    for operation, fd in operations:
        clock += 1.0
        if operation == "add" and fd not in model:
            waiting.add(fd, clock, message_mode=fd % 2 == 0, received=b"")
            model[fd] = clock
        elif operation == "remove" and fd in model:
            waiting.remove(fd)
            del model[fd]
        elif operation == "expire":
            now = clock - fd
            due = [f for f, deadline in model.items() if deadline <= now]
            expired = waiting.first_expired(now)
            assert (expired is None) == (not due)
            if expired is not None:
                assert model[expired] == min(model.values())
        assert len(waiting) == len(model)
        assert all((f in waiting) == (f in model) for f in range(41))
        assert waiting.next_deadline() == (min(model.values()) if model else None)
