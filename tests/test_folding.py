"""Folding floods of refusals into counts: exact times, no sleeping."""

from hypothesis import given
from hypothesis import strategies as st

from greeterd.folding import FOLD_WINDOW, OTHERS, SINGLES_PER_KEY, RefusalFolder

BAD = "control character in name"
EMPTY = "empty name"


def flood(folder: RefusalFolder, count: int, uid: int = 1000, reason: str = BAD, at: float = 0.0):
    """``count`` refusals at time ``at``; the list of which got a line of their own."""
    return [folder.refused(at, uid, reason) for _ in range(count)]


def test_refusals_at_a_human_pace_each_get_their_line():
    """A few refusals in a window are logged one by one, and leave nothing to summarise."""
    folder = RefusalFolder()
    assert flood(folder, SINGLES_PER_KEY) == [True] * SINGLES_PER_KEY
    assert folder.due(FOLD_WINDOW) == []
    assert len(folder) == 0


def test_the_rest_of_a_window_is_one_summary_when_it_ends():
    """Past SINGLES_PER_KEY, refusals are folded; the summary falls due exactly at the end of
    the window that began with the key's first refusal, not a moment before."""
    folder = RefusalFolder()
    logged = flood(folder, 5, at=1.0) + flood(folder, 95, at=3.0)
    assert logged.count(True) == SINGLES_PER_KEY
    assert folder.next_due == 1.0 + FOLD_WINDOW
    assert folder.due(1.0 + FOLD_WINDOW - 0.001) == []
    assert folder.due(1.0 + FOLD_WINDOW) == [(1000, BAD, 95)]
    assert folder.next_due is None


def test_a_new_window_logs_singles_again():
    """After a window closes, the same peer's next refusals are logged one by one again."""
    folder = RefusalFolder()
    flood(folder, 20)
    folder.due(FOLD_WINDOW)
    assert flood(folder, SINGLES_PER_KEY, at=FOLD_WINDOW + 1) == [True] * SINGLES_PER_KEY


def test_each_uid_and_reason_folds_on_its_own():
    """Two uids, and two reasons of one uid, each get their singles and their own summary."""
    folder = RefusalFolder()
    for uid, reason in ((1000, BAD), (1001, BAD), (1000, EMPTY)):
        assert flood(folder, 8, uid, reason).count(True) == SINGLES_PER_KEY
    assert sorted(folder.due(FOLD_WINDOW)) == [(1000, BAD, 3), (1000, EMPTY, 3), (1001, BAD, 3)]


def test_many_peers_share_one_budget_of_single_lines():
    """However many peers flood, a window has at most singles_per_window single lines; the
    refusals past it are folded into their keys' summaries."""
    folder = RefusalFolder(singles_per_window=10)
    logged = [folder.refused(0.0, uid, BAD) for uid in range(20)]
    assert logged == [True] * 10 + [False] * 10
    summaries = folder.due(FOLD_WINDOW)
    assert sorted(summaries) == [(uid, BAD, 1) for uid in range(10, 20)]


def test_keys_past_the_cap_are_folded_under_others():
    """Past max_keys open windows, a new peer's refusals go to one summary for other peers."""
    folder = RefusalFolder(max_keys=3)
    for uid in range(5):
        folder.refused(0.0, uid, BAD)
    assert len(folder) == 4
    assert (OTHERS, BAD, 2) in folder.due(FOLD_WINDOW)


def test_a_peer_with_unknown_credentials_is_not_taken_for_others():
    """uid -1 (a datagram without credentials) gets its single lines like any peer."""
    folder = RefusalFolder(max_keys=3)
    assert flood(folder, SINGLES_PER_KEY, uid=-1) == [True] * SINGLES_PER_KEY


def test_flush_gives_every_summary_still_owed():
    """When the server stops, windows that have not ended yet are summarised too."""
    folder = RefusalFolder()
    flood(folder, 12)
    assert folder.flush() == [(1000, BAD, 7)]
    assert folder.flush() == []


events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=5, allow_nan=False),  # time since the previous one
        st.integers(min_value=0, max_value=4),  # uid
        st.sampled_from([BAD, EMPTY]),
    ),
    max_size=400,
)


@given(events)
def test_single_lines_and_repeats_always_add_up_to_the_refusals(refusals):
    """Whatever the timing and the mix of peers, every refusal is in exactly one line: its own,
    or a summary's GREETER_REPEATS."""
    folder = RefusalFolder(singles_per_window=7, max_keys=3)
    now, singles, repeats = 0.0, 0, 0
    for gap, uid, reason in refusals:
        now += gap
        repeats += sum(count for *_, count in folder.due(now))
        singles += folder.refused(now, uid, reason)
    repeats += sum(count for *_, count in folder.flush())
    assert singles + repeats == len(refusals)
