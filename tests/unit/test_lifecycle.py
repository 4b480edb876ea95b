import pytest
from qiskit.providers import JobStatus as QiskitJobStatus

from raysession import JobStatus, SessionState
from raysession._lifecycle import can_transition, transition


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (SessionState.PENDING, "Pending"),
        (SessionState.ACTIVE, "In progress, accepting new jobs"),
        (SessionState.INACTIVE, "Pending"),
        (SessionState.DRAINING, "In progress, not accepting new jobs"),
        (SessionState.CLOSED, "Closed"),
        (SessionState.CANCELLED, "Closed"),
        (SessionState.EXPIRED, "Closed"),
    ],
)
def test_each_state_reports_the_runtime_status_string(state, status):
    assert state.status() == status


def test_final_states_accept_nothing_and_go_nowhere():
    for state in (SessionState.CLOSED, SessionState.CANCELLED, SessionState.EXPIRED):
        assert state.is_final and not state.is_accepting
        assert not any(can_transition(state, other) for other in SessionState)


def test_inactive_session_reactivates_and_pending_cannot_expire():
    assert transition(SessionState.INACTIVE, SessionState.ACTIVE) is SessionState.ACTIVE
    assert not can_transition(SessionState.PENDING, SessionState.EXPIRED)
    with pytest.raises(RuntimeError, match="cannot move from closed to active"):
        transition(SessionState.CLOSED, SessionState.ACTIVE)


def test_job_status_equals_runtime_strings_and_qiskit_members():
    for status in ("QUEUED", "RUNNING", "DONE", "ERROR", "CANCELLED"):
        ours = JobStatus(status)
        assert ours == status
        assert ours == QiskitJobStatus[status]
        assert QiskitJobStatus[status] == ours
        assert ours.to_qiskit() is QiskitJobStatus[status]
    assert JobStatus.DONE != QiskitJobStatus.ERROR
    assert JobStatus.DONE != "ERROR"
    assert {JobStatus.DONE: 1}["DONE"] == 1
    assert JobStatus.DONE.is_final and not JobStatus.RUNNING.is_final
