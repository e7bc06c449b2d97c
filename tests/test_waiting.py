"""The waiting clients' bookkeeping: pure values, no sockets."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greeterd.waiting import DEADLINE_SLACK, UserShares, WaitingClients


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


def test_remove_gives_back_the_uid_a_client_was_added_with():
    """add() keeps each client's uid (one C int per fd) and remove() returns it, so the
    server knows whose share to give back without asking the kernel again."""
    waiting = WaitingClients()
    waiting.add(3, 1.0, message_mode=False, received=b"", uid=1000)
    waiting.add(900, 1.0, message_mode=False, received=b"", uid=-2)  # 4294967294, signed
    waiting.add(5, 1.0, message_mode=False, received=b"")
    assert waiting.remove(900) == -2
    assert waiting.remove(5) == -1  # not given: unknown, as lines.UNKNOWN_PEER says
    assert waiting.remove(3) == 1000
    assert waiting._uid_by_fd.nbytes == 0


def test_a_user_may_have_its_share_waiting_and_no_more():
    """take() says yes share times for one uid, then no, counting nothing for the no."""
    shares = UserShares(3)
    assert [shares.take(1000) for _ in range(5)] == [True, True, True, False, False]
    assert shares.held(1000) == 3


def test_users_share_nothing_with_each_other():
    """One user at its share does not stop another: each uid has a share of its own (root's
    too, unless it is exempt, as the daemon makes it)."""
    shares = UserShares(2)
    assert [shares.take(1000) for _ in range(3)] == [True, True, False]
    assert [shares.take(0) for _ in range(3)] == [True, True, False]
    assert shares.take(1001)
    assert (shares.held(1000), shares.held(0), shares.held(1001), len(shares)) == (2, 2, 1, 3)


def test_a_client_given_back_makes_room_and_an_empty_entry_is_dropped():
    """give_back() frees one place of that uid; at zero its entry is gone, so the table
    holds only users with a client waiting."""
    shares = UserShares(2)
    shares.take(1000)
    shares.take(1000)
    shares.give_back(1000)
    assert shares.take(1000)
    assert not shares.take(1000)
    shares.give_back(1000)
    shares.give_back(1000)
    assert (shares.held(1000), len(shares)) == (0, 0)
    with pytest.raises(KeyError):
        shares.give_back(1000)  # giving back more than was taken is a bug, not a no-op


def test_many_users_cost_an_entry_each_only_while_they_wait():
    """10,000 users with a client each: 10,000 entries, every one with room for more; when
    they leave, nothing is left."""
    shares = UserShares(1)
    assert all(shares.take(uid) for uid in range(10_000))
    assert len(shares) == 10_000
    assert not any(shares.take(uid) for uid in range(10_000))
    for uid in range(10_000):
        shares.give_back(uid)
    assert len(shares) == 0


def test_exempt_uids_are_never_counted_nor_refused():
    """Exempt uids (root, and greeterd's own in a user's instance) may have any number
    waiting and take no entry; every other uid still has its share."""
    shares = UserShares(1, exempt=(0, 1000))
    assert all(shares.take(uid) for uid in (0, 1000) for _ in range(100))
    assert (shares.held(0), shares.held(1000), len(shares)) == (0, 0, 0)
    shares.give_back(1000)  # given back as freely as taken
    assert shares.take(1001)
    assert not shares.take(1001)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=300))
def test_shares_agree_with_a_plain_count_of_each_users_clients(operations):
    """Any sequence of clients starting and ending to wait: take() says yes exactly when the
    uid has fewer than its share, and the table holds exactly the uids with a client."""
    shares, model = UserShares(3, exempt=(5,)), dict.fromkeys(range(6), 0)
    for starting, uid in operations:
        if starting:
            allowed = uid == 5 or model[uid] < 3
            assert shares.take(uid) is allowed
            model[uid] += allowed
        elif model[uid]:
            shares.give_back(uid)
            model[uid] -= 1
        assert len(shares) == sum(1 for u, n in model.items() if n and u != 5)
        assert all(shares.held(u) == (0 if u == 5 else n) for u, n in model.items())
