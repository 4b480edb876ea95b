"""Session lifecycle, deadlines, FIFO, close/cancel/expiry, from_id and cleanup, on real Ray."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import ray

from raysession import (
    EstimatorV2,
    JobStatus,
    Session,
    SessionClosedError,
    SessionExpiredError,
    SessionNotFoundError,
    SessionState,
    current_session,
    list_sessions,
)
from tests.conftest import live_raysession_actors, wait_for
from tests.helpers import bell, entered, failing, gated, new_gate

EXACT = {"default_precision": 0.0}


def _tiny(estimator: EstimatorV2):
    return estimator.run([(bell(False), "ZZ")])


def _held(estimator: EstimatorV2, gate_name: str):
    """A one-chunk job whose simulation waits at the gate ``gate_name``; <ZZ> is 1."""
    return estimator.run([(gated(bell(False), gate_name), "ZZ")])


def test_session_id_is_assigned_at_construction_and_status_is_pending(backend):
    session = Session(backend=backend)
    try:
        assert len(session.session_id) == 32
        assert session.status() == "Pending"
        details = session.details()
        assert details.state is SessionState.PENDING
        assert details.mode == "dedicated" and details.backend_name == "aer_simulator"
        assert details.max_time == 8 * 3600 and details.interactive_timeout == 60.0
        assert details.started_at is None and session.usage() == 0.0
        assert session.session_id in [s.id for s in list_sessions()]
    finally:
        session.close()


def test_first_job_starts_the_session_and_its_max_time_clock(backend):
    with Session(backend=backend, max_time="2h 30m 40s") as session:
        assert session.max_time == 9040
        _tiny(EstimatorV2(options={"default_precision": 0})).result()
        details = session.details()
        assert session.status() == "In progress, accepting new jobs"
        assert details.state is SessionState.ACTIVE
        assert details.started_at is not None and details.last_job_completed is not None
        assert details.num_jobs == 1
        assert session.usage() > 0


def test_interactive_timeout_makes_session_inactive_and_next_job_reactivates(backend):
    gate, name = new_gate()
    with Session(backend=backend, interactive_timeout=0.3) as session:
        estimator = EstimatorV2(options=EXACT)
        _tiny(estimator).result()
        # Nothing queued for 0.3 s after the job: the session goes inactive by itself.
        wait_for(lambda: session.details().state is SessionState.INACTIVE)
        assert session.status() == "Pending" and session.active
        completed = session.details().last_job_completed
        # The next job makes it active again, for as long as the job runs (held at the gate).
        job = _held(estimator, name)
        wait_for(lambda: entered(gate) == 1)
        assert session.details().state is SessionState.ACTIVE
        assert session.status() == "In progress, accepting new jobs"
        assert job.status() == "RUNNING"
        gate.allow.remote(1)
        assert float(job.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
        assert session.details().last_job_completed > completed
        # ... and goes inactive again once that job is done.
        wait_for(lambda: session.details().state is SessionState.INACTIVE)


def test_session_without_jobs_closes_itself_after_the_idle_limit(backend):
    session = Session(backend=backend, idle_timeout=0.3)
    wait_for(lambda: session.status() == "Closed")
    wait_for(lambda: session.session_id not in [s.id for s in list_sessions()])
    with pytest.raises(SessionClosedError, match="closed"):
        _tiny(EstimatorV2(mode=session))


def test_close_lets_queued_jobs_finish_and_rejects_new_ones(backend):
    gate, name = new_gate()
    session = Session(backend=backend)
    estimator = EstimatorV2(mode=session, options=EXACT)
    running = _held(estimator, name)
    wait_for(lambda: entered(gate) == 1)
    queued = [_tiny(estimator) for _ in range(3)]
    session.close()
    assert session.status() == "In progress, not accepting new jobs"
    assert session.details().state is SessionState.DRAINING
    with pytest.raises(SessionClosedError, match=f"Session {session.session_id} is closed"):
        _tiny(estimator)
    assert running.status() == "RUNNING"
    assert [job.status() for job in queued] == ["QUEUED"] * 3
    gate.allow.remote(1)
    assert float(running.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
    for job in queued:
        assert job.result(timeout=120)[0].data.evs == pytest.approx(1.0)
    assert session.status() == "Closed"


def test_cancel_cancels_queued_jobs_and_running_job_completes(backend):
    gate, name = new_gate()
    session = Session(backend=backend)
    estimator = EstimatorV2(mode=session, options=EXACT)
    running = _held(estimator, name)
    wait_for(lambda: entered(gate) == 1)
    queued = [_tiny(estimator) for _ in range(3)]
    session.cancel()
    assert session.status() == "Closed"
    assert session.details().state is SessionState.CANCELLED
    for job in queued:
        assert job.status() == "CANCELLED" and job.cancelled()
    # The running job was still held at the gate when the session was cancelled.
    assert running.status() == "RUNNING" and ray.get(gate.counts.remote()) == (1, 0)
    gate.allow.remote(1)
    assert float(running.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
    assert running.status() == JobStatus.DONE
    with pytest.raises(SessionClosedError):
        _tiny(estimator)


def test_close_and_cancel_are_idempotent(backend):
    session = Session(backend=backend)
    session.close()
    session.close()
    session.cancel()
    assert session.status() == "Closed"
    assert session.details().state is SessionState.CLOSED


def test_max_time_expiry_fails_queued_jobs_and_running_job_completes(backend):
    gate, name = new_gate()
    session = Session(backend=backend, max_time=1)
    estimator = EstimatorV2(mode=session, options=EXACT)
    running = _held(estimator, name)
    queued = [_tiny(estimator) for _ in range(2)]
    wait_for(lambda: entered(gate) == 1)
    wait_for(lambda: session.details().state is SessionState.EXPIRED, timeout=60)
    # The running job is still held at the gate: max_time passed while it ran.
    assert running.status() == "RUNNING" and ray.get(gate.counts.remote()) == (1, 0)
    assert session.status() == "Closed"
    with pytest.raises(SessionExpiredError, match="expired"):
        _tiny(estimator)
    for job in queued:
        with pytest.raises(SessionExpiredError, match="expired"):
            job.result(timeout=120)
        assert job.status() == "ERROR"
        assert "expired" in job.error_message()
    gate.allow.remote(1)
    assert float(running.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
    assert running.status() == "DONE"


def test_leaving_with_block_closes_even_on_exception(backend):
    with pytest.raises(RuntimeError, match="user code"):
        with Session(backend=backend) as session:
            raise RuntimeError("user code")
    assert session.status() == "Closed"
    assert current_session() is None


def test_nested_with_blocks_bind_the_inner_session_and_restore_the_outer(backend):
    with Session(backend=backend) as outer:
        assert EstimatorV2().mode == outer
        with Session(backend=backend) as inner:
            assert current_session() == inner
            assert EstimatorV2().mode == inner
        assert current_session() == outer
        assert EstimatorV2().mode == outer
    assert current_session() is None


@ray.remote(num_cpus=0)
def _submit_from_task(estimator: EstimatorV2, count: int) -> list[str]:
    jobs = [estimator.run([(bell(False), "ZZ")]) for _ in range(count)]
    assert all(job.result()[0].data.evs == pytest.approx(1.0) for job in jobs)
    return [job.job_id() for job in jobs]


def test_jobs_from_8_concurrent_submitters_run_one_at_a_time_in_fifo_order(backend):
    with Session(backend=backend) as session:
        estimator = EstimatorV2(options={"default_precision": 0})
        tasks = [_submit_from_task.remote(estimator, 4) for _ in range(8)]
        ids = [job_id for ids in ray.get(tasks) for job_id in ids]
        assert len(set(ids)) == 32
        metrics = sorted((session.job_info(i).metrics for i in ids), key=lambda m: m.sequence)
    assert [m.sequence for m in metrics] == list(range(32))
    for before, after in itertools.pairwise(metrics):
        assert before.created <= after.created
        assert before.finished <= after.running


@ray.remote(num_cpus=0)
def _attach_and_run(session_id: str) -> tuple[str, float]:
    session = Session.from_id(session_id)
    job = EstimatorV2(mode=session, options={"default_precision": 0}).run([(bell(False), "ZZ")])
    return session.status(), float(job.result()[0].data.evs)


def test_from_id_attaches_from_a_ray_task(backend):
    with Session(backend=backend) as session:
        status, ev = ray.get(_attach_and_run.remote(session.session_id))
        assert status == "In progress, accepting new jobs"
        assert ev == pytest.approx(1.0)
        assert session.details().num_jobs == 1


def test_from_id_of_unknown_session_raises_session_not_found():
    with pytest.raises(SessionNotFoundError, match="No live session has id nope"):
        Session.from_id("nope")
    with pytest.raises(LookupError):
        Session.from_id("nope")


@pytest.mark.parametrize("max_time", ["1.5h", "junk", 0, -5, "0s"])
def test_bad_max_time_raises_value_error_saying_what_is_accepted(backend, max_time):
    with pytest.raises(ValueError, match="max_time"):
        Session(backend=backend, max_time=max_time)


def test_max_time_above_the_configured_bound_is_rejected(backend, monkeypatch):
    with pytest.raises(ValueError, match="outside the allowed range 1 s to 28800 s"):
        Session(backend=backend, max_time="9h")
    monkeypatch.setenv("RAYSESSION_MAX_MAX_TIME", "36000")
    session = Session(backend=backend, max_time="9h")
    assert session.max_time == 9 * 3600
    session.close()


def test_bad_backend_and_timeouts_are_rejected(backend):
    with pytest.raises(ValueError, match="backend must be a raysession backend"):
        Session(backend=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="No backend is called 'not a backend name'"):
        Session(backend="not a backend name")
    with pytest.raises(ValueError, match="interactive_timeout must be a positive"):
        Session(backend=backend, interactive_timeout=0)


def test_session_actor_exits_after_the_last_result_is_handed_over(backend):
    before = set(live_raysession_actors())
    with Session(backend=backend) as session:
        jobs = [_tiny(EstimatorV2(options={"default_precision": 0})) for _ in range(3)]
        assert f"session-{session.session_id}" in live_raysession_actors()
    for job in jobs:
        job.result()
    wait_for(lambda: f"session-{session.session_id}" not in live_raysession_actors())
    # The node's courier exits at its next idle check, once no session is live.
    wait_for(lambda: set(live_raysession_actors()) <= before)
    assert session.status() == "Closed"
    # Finished jobs still answer from their result after the actor is gone.
    assert jobs[0].status() == "DONE"


def test_failed_job_is_error_and_the_session_keeps_serving(backend):
    broken = failing(bell(False))
    with Session(backend=backend) as session:
        estimator = EstimatorV2(options={"default_precision": 0})
        bad = estimator.run([(broken, "ZZ")])
        good = _tiny(estimator)
        assert np.isclose(good.result()[0].data.evs, 1.0)
        assert bad.status() == "ERROR"
        assert bad.errored() and "not_a_gate" in bad.error_message()
        assert session.status() == "In progress, accepting new jobs"
