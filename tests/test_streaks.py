"""Streaks: a process's consecutive small jobs go straight to one worker, the session hears
of them in batches, and every session rule (FIFO, close, cancel, a lost worker, storage)
holds as it does for any job (see raysession.backends._streaks)."""

from __future__ import annotations

import pytest
import ray

from raysession import (
    EstimatorV2,
    JobCancelledError,
    QiskitRuntimeService,
    RuntimeJobV2,
    Session,
    SessionClosedError,
)
from raysession.backends import _pool_client
from tests.conftest import wait_for
from tests.helpers import bell, entered, gated, new_gate

EXACT = {"default_precision": 0.0}


def _evs(job: RuntimeJobV2) -> float:
    return float(job.result(timeout=120)[0].data.evs)


def _in_streak(job: RuntimeJobV2) -> bool:
    """Whether the job ran in a streak (its worker says so with the result)."""
    return job._in_streak is not None and bool(ray.get(job._in_streak, timeout=120))


def _loop(estimator: EstimatorV2, count: int) -> list[RuntimeJobV2]:
    """``count`` jobs, each read before the next is submitted (an optimizer's loop)."""
    jobs = []
    for _ in range(count):
        job = estimator.run([(bell(False), "ZZ")])
        assert _evs(job) == pytest.approx(1.0)
        jobs.append(job)
    return jobs


def _into_streak(estimator: EstimatorV2) -> list[RuntimeJobV2]:
    """Run a loop until its jobs go to a streak: the first is granted a worker, the
    second goes ahead to it and opens the streak, the third runs in it."""
    jobs = _loop(estimator, 3)
    assert [_in_streak(job) for job in jobs] == [False, False, True]
    assert jobs[1]._ran_ahead and jobs[1]._streak is not None
    return jobs


def test_a_loop_of_small_jobs_runs_in_a_streak_and_the_session_records_each_in_order(backend):
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        jobs = _into_streak(estimator) + _loop(estimator, 9)
        assert all(_in_streak(job) for job in jobs[2:])
        # One worker ran them all, and the session has a record of each, in order.
        workers = {job._grant.worker_id for job in jobs}
        assert len(workers) == 1
        infos = session.jobs()
        assert [info.job_id for info in infos] == [job.job_id() for job in jobs]
        assert [info.metrics.sequence for info in infos] == list(range(12))
        assert {info.status for info in infos} == {"DONE"}
        last = jobs[-1].metrics()
        assert set(last["workers"]) == workers and last["sequence"] == 11
        assert last["num_attempts"] == 1 and last["attempts"][0]["finished"] is not None
        assert last["timestamps"]["running"] <= last["timestamps"]["finished"]
        assert jobs[-1].status() == "DONE"


def test_a_job_from_another_process_ends_the_streak_and_runs_after_its_jobs(backend):
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        streak_jobs = _into_streak(estimator)

        @ray.remote(num_cpus=0)
        def submit_elsewhere(session: Session) -> tuple[str, float]:
            job = EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")])
            return job.job_id(), float(job.result()[0].data.evs)

        other_id, other_evs = ray.get(submit_elsewhere.remote(session), timeout=120)
        assert other_evs == pytest.approx(1.0)
        # The streak ended when the other job reached the session: this process's next
        # job goes to the session from the worker, after the other one.
        after = estimator.run([(bell(False), "ZZ")])
        assert _evs(after) == pytest.approx(1.0) and not _in_streak(after)
        sequences = {info.job_id: info.metrics.sequence for info in session.jobs()}
        order = [job.job_id() for job in streak_jobs] + [other_id, after.job_id()]
        assert sorted(sequences, key=sequences.__getitem__) == order
        # The loop then opens a streak again.
        again = _loop(estimator, 3)
        assert _in_streak(again[-1])


def test_a_session_closed_by_another_process_refuses_the_streaks_next_job(backend):
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        _into_streak(estimator)

        @ray.remote(num_cpus=0)
        def close_elsewhere(session_id: str) -> None:
            Session.from_id(session_id).close()

        ray.get(close_elsewhere.remote(session.session_id), timeout=120)
        late = estimator.run([(bell(False), "ZZ")])
        with pytest.raises(SessionClosedError):
            late.result(timeout=120)
        assert late.status() == "ERROR"
        assert late.job_id() not in session.job_ids()


def test_cancelling_a_running_job_of_a_streak_stops_it_and_the_session_goes_on(backend):
    gate, name = new_gate()
    options = {**EXACT, "raysession": {"circuit_cache": False}}
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=options)
        _into_streak(estimator)
        held = estimator.run([(gated(bell(False), name), "ZZ")])
        wait_for(lambda: entered(gate) == 1, timeout=120)  # it runs, in the streak
        assert held.status() == "RUNNING"
        assert held.cancel()
        with pytest.raises(JobCancelledError):
            held.result(timeout=120)
        assert held.status() == "CANCELLED"
        assert _evs(estimator.run([(bell(False), "ZZ")])) == pytest.approx(1.0)
        gate.allow.remote(10)


def test_a_streak_job_whose_worker_dies_runs_again_once_through_the_session(backend):
    gate, name = new_gate()
    options = {**EXACT, "raysession": {"circuit_cache": False}}
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=options)
        jobs = _into_streak(estimator)
        held = estimator.run([(gated(bell(False), name), "ZZ")])
        wait_for(lambda: entered(gate) == 1, timeout=120)
        ray.kill(_pool_client.handle(jobs[-1]._grant.worker_id), no_restart=True)
        gate.allow.remote(10)  # the run again passes
        assert _evs(held) == pytest.approx(1.0)
        assert entered(gate) == 2  # killed once, run again once
        assert session.job_ids().count(held.job_id()) == 1
        assert held.status() == "DONE"


def test_a_streak_jobs_result_is_stored_and_read_by_another_reader(backend):
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        jobs = _into_streak(estimator)
        assert session.storage is not None
        read = QiskitRuntimeService().job(jobs[-1].job_id())
        assert read._stored and _evs(read) == pytest.approx(1.0)
