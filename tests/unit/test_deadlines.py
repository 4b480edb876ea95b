"""The session deadline rules, on a fake clock: every time is a number the test chooses."""

from __future__ import annotations

import pytest

from raysession._deadlines import IDLE_LOOK_S, MIN_LOOK_S, Clocks, Due, Limits, due
from raysession._lifecycle import SessionState

LIMITS = Limits(max_time_s=100, interactive_timeout_s=10, idle_timeout_s=50, undelivered_grace_s=5)


def clocks(state: SessionState, **changes: object) -> Clocks:
    values: dict[str, object] = {
        "state": state,
        "busy": False,
        "started": None,
        "last_completed": None,
        "last_activity": 0.0,
        "undelivered": False,
    }
    values.update(changes)
    return Clocks(**values)  # type: ignore[arg-type]


def test_a_pending_session_closes_itself_after_the_idle_timeout_and_not_before():
    pending = clocks(SessionState.PENDING, last_activity=1000.0)
    assert due(pending, LIMITS, 1049.0) == (None, pytest.approx(1.0))
    assert due(pending, LIMITS, 1050.0)[0] is Due.CLOSE_IDLE


def test_a_busy_session_is_never_idle():
    busy = clocks(SessionState.PENDING, busy=True, last_activity=0.0)
    assert due(busy, LIMITS, 10_000.0) == (None, IDLE_LOOK_S)


def test_max_time_counts_from_the_first_job_start_and_expires_even_while_busy():
    active = clocks(SessionState.ACTIVE, busy=True, started=200.0, last_activity=250.0)
    assert due(active, LIMITS, 299.5) == (None, pytest.approx(0.5))
    assert due(active, LIMITS, 300.0)[0] is Due.EXPIRE
    draining = clocks(SessionState.DRAINING, busy=True, started=200.0)
    assert due(draining, LIMITS, 300.0)[0] is Due.EXPIRE


def test_the_interactive_timeout_starts_when_the_last_job_finished_with_nothing_queued():
    active = clocks(SessionState.ACTIVE, started=0.0, last_completed=40.0, last_activity=40.0)
    assert due(active, LIMITS, 49.0) == (None, pytest.approx(1.0))
    assert due(active, LIMITS, 50.0)[0] is Due.INACTIVE
    queued = clocks(SessionState.ACTIVE, busy=True, started=0.0, last_completed=40.0)
    assert due(queued, LIMITS, 60.0) == (None, pytest.approx(40.0))


def test_an_inactive_session_still_expires_and_closes_when_idle_for_long():
    inactive = clocks(SessionState.INACTIVE, started=0.0, last_completed=10.0, last_activity=10.0)
    assert due(inactive, LIMITS, 59.0) == (None, pytest.approx(1.0))
    assert due(inactive, LIMITS, 60.0)[0] is Due.CLOSE_IDLE
    expired_first = clocks(SessionState.INACTIVE, started=0.0, last_activity=99.0)
    assert due(expired_first, LIMITS, 100.0)[0] is Due.EXPIRE


def test_a_final_session_exits_at_once_unless_results_wait_then_after_the_grace():
    assert due(clocks(SessionState.CLOSED), LIMITS, 0.0)[0] is Due.EXIT
    waiting = clocks(SessionState.CLOSED, undelivered=True, last_activity=100.0)
    assert due(waiting, LIMITS, 104.0) == (None, pytest.approx(1.0))
    assert due(waiting, LIMITS, 105.0)[0] is Due.EXIT
    still_running = clocks(SessionState.CANCELLED, busy=True)
    assert due(still_running, LIMITS, 1e9) == (None, IDLE_LOOK_S)


def test_the_next_look_is_the_nearest_deadline_within_bounds():
    active = clocks(SessionState.ACTIVE, started=0.0, last_completed=95.0)
    # max_time in 5 s, the interactive timeout in 10 s: the nearer one wins.
    assert due(active, LIMITS, 95.0) == (None, pytest.approx(5.0))
    almost = clocks(SessionState.PENDING, last_activity=0.0)
    assert due(almost, LIMITS, 50.0 - 1e-6) == (None, MIN_LOOK_S)
