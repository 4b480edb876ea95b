"""The courier's notices to a session of the results it fetched: one timer per session."""

from __future__ import annotations

from raysession._courier import FetchedNotices


def test_the_first_fetched_job_of_a_session_sets_its_timer_and_the_next_ones_wait_for_it():
    notices = FetchedNotices()
    assert notices.note("s", "a") is True
    assert notices.note("s", "b") is False
    assert notices.note("other", "x") is True  # each session has its own timer
    assert notices.flush("s") == ["a", "b"]
    assert notices.flush("other") == ["x"]
    assert not notices


def test_a_list_taken_along_by_a_call_leaves_the_timer_set_for_the_next_list():
    notices = FetchedNotices()
    assert notices.note("s", "a") is True
    assert notices.take("s") == ["a"]  # rode along a result call
    # The timer set for "a" is still on its way: "b" waits for it, no second timer.
    assert notices.note("s", "b") is False
    assert notices.flush("s") == ["b"]
    assert notices.note("s", "c") is True  # that timer fired: the next job sets one
    assert notices.take("s") == ["c"] and notices.take("s") == []


def test_a_timer_that_finds_nothing_left_flushes_nothing():
    notices = FetchedNotices()
    notices.note("s", "a")
    notices.take("s")
    assert notices.flush("s") == []
    assert not notices
