"""Lanes: a Batch's jobs that queue while its workers are busy wait at those workers, sent
there by their submitters; their results come straight back (``raysession._session_lanes``).

Jobs are held running at a gate the test opens (``tests.helpers``), so what waits behind
them is known exactly.
"""

from __future__ import annotations

import pytest

from raysession import Batch, EstimatorV2, JobCancelledError, SessionExpiredError
from tests.conftest import wait_for
from tests.helpers import bell, entered, gated, new_gate

# No cache: every job unpickles its circuit, so every job of a gated PUB waits at the gate.
GATED = {"default_precision": 0.0, "raysession": {"circuit_cache": False}}


def zz(job) -> float:
    return float(job.result(timeout=120)[0].data.evs)


def _hold_every_worker(estimator: EstimatorV2, backend, gate, name: str) -> list:
    held = [estimator.run([(gated(bell(False), name), "ZZ")]) for _ in range(backend.num_workers)]
    wait_for(lambda: entered(gate) == len(held))
    return held


def _in_lane(job) -> bool:
    grant = job._grant
    return grant is not None and bool(getattr(grant, "lane", False))


def test_jobs_queued_behind_busy_workers_wait_in_lanes_and_their_results_come_from_there(
    backend,
):
    gate, name = new_gate()
    with Batch(backend) as batch:
        estimator = EstimatorV2(mode=batch, options=GATED)
        held = _hold_every_worker(estimator, backend, gate, name)
        queued = [estimator.run([(bell(False), "ZZ")]) for _ in range(6)]
        assert all(_in_lane(job) for job in queued)  # sent to a worker by this process
        assert [job.status() for job in queued] == ["QUEUED"] * 6
        assert len(batch.job_ids()) == len(held) + len(queued)
        gate.allow.remote(len(held))
        assert [zz(job) for job in queued] == [1.0] * 6
        held_workers = {job.metrics()["workers"][0] for job in held}
        for job in queued:
            assert job.status() == "DONE"
            metrics = job.metrics()
            assert metrics["workers"][0] in held_workers  # the lane's worker ran it
            assert metrics["retries"] == 0 and metrics["timestamps"]["running"] is not None
        assert [zz(job) for job in held] == [1.0] * len(held)


def test_cancelling_a_job_waiting_in_a_lane_takes_it_back_unrun(backend):
    gate, name = new_gate()
    with Batch(backend) as batch:
        estimator = EstimatorV2(mode=batch, options=GATED)
        held = _hold_every_worker(estimator, backend, gate, name)
        victim = estimator.run([(gated(bell(False), name), "ZZ")])  # would stop at the gate
        kept = estimator.run([(bell(False), "ZZ")])
        assert _in_lane(victim) and _in_lane(kept)
        assert victim.cancel() is True
        with pytest.raises(JobCancelledError):
            victim.result(timeout=60)
        assert victim.status() == "CANCELLED"
        gate.allow.remote(len(held))
        assert zz(kept) == 1.0
        assert [zz(job) for job in held] == [1.0] * len(held)
        assert entered(gate) == len(held)  # the cancelled job never ran
        assert victim.cancel() is False


def test_cancelling_a_batch_cancels_the_jobs_waiting_in_lanes_and_the_running_ones_finish(
    backend,
):
    gate, name = new_gate()
    batch = Batch(backend)
    estimator = EstimatorV2(mode=batch, options=GATED)
    held = _hold_every_worker(estimator, backend, gate, name)
    queued = [estimator.run([(gated(bell(False), name), "ZZ")]) for _ in range(4)]
    assert all(_in_lane(job) for job in queued)
    batch.cancel()
    assert [job.status() for job in queued] == ["CANCELLED"] * 4
    for job in queued:
        with pytest.raises(JobCancelledError):
            job.result(timeout=60)
    assert [job.status() for job in held] == ["RUNNING"] * len(held)
    gate.allow.remote(len(held))
    assert [zz(job) for job in held] == [1.0] * len(held)
    assert entered(gate) == len(held)


def test_jobs_waiting_in_lanes_fail_with_the_session_when_it_expires(backend):
    gate, name = new_gate()
    batch = Batch(backend, max_time=1)
    estimator = EstimatorV2(mode=batch, options=GATED)
    held = _hold_every_worker(estimator, backend, gate, name)
    queued = [estimator.run([(gated(bell(False), name), "ZZ")]) for _ in range(3)]
    assert all(_in_lane(job) for job in queued)
    wait_for(lambda: batch.details().state == "expired", timeout=60)
    for job in queued:
        with pytest.raises(SessionExpiredError, match="expired"):
            job.result(timeout=60)
        assert job.status() == "ERROR"
    gate.allow.remote(len(held))
    assert [zz(job) for job in held] == [1.0] * len(held)  # running jobs complete
    assert entered(gate) == len(held)


def test_jobs_of_a_lane_whose_worker_was_stopped_run_on_another_worker(backend):
    gate, name = new_gate()
    with Batch(backend) as batch:
        estimator = EstimatorV2(mode=batch, options=GATED)
        stopped, running = _hold_every_worker(estimator, backend, gate, name)[:2]
        queued = [estimator.run([(bell(False), "ZZ")]) for _ in range(6)]
        assert all(_in_lane(job) for job in queued)
        lost = {job.job_id() for job in queued if job._grant.worker_id == stopped_worker(stopped)}
        assert lost  # some wait at the worker that is stopped now
        assert stopped.cancel() is True  # a running job: its worker is stopped
        # Every job of the stopped worker's lane runs elsewhere, none is lost.
        assert [zz(job) for job in queued] == [1.0] * len(queued)
        gate.allow.remote(2)  # the running job, and the stopped job's parked gate call
        assert zz(running) == 1.0
        assert stopped.status() == "CANCELLED"
        for job in queued:
            assert job.status() == "DONE"


def stopped_worker(job) -> str:
    """The worker a held job runs on (its grant's)."""
    return str(job._grant.worker_id)


def test_lanes_can_be_switched_off_and_a_bad_switch_is_refused(backend, monkeypatch):
    monkeypatch.setenv("RAYSESSION_LANES", "sideways")
    with pytest.raises(ValueError, match="RAYSESSION_LANES='sideways' must be on or off"):
        Batch(backend)
    monkeypatch.setenv("RAYSESSION_LANES", "off")
    gate, name = new_gate()
    with Batch(backend) as batch:
        estimator = EstimatorV2(mode=batch, options=GATED)
        held = _hold_every_worker(estimator, backend, gate, name)
        queued = estimator.run([(bell(False), "ZZ")])
        assert not _in_lane(queued)  # it waits in the session actor's queue
        gate.allow.remote(len(held))
        assert zz(queued) == 1.0


def test_a_job_a_lane_cannot_take_queues_in_the_session_and_one_lane_drains_for_it(backend):
    gate, name = new_gate()
    with Batch(backend) as batch:
        estimator = EstimatorV2(mode=batch, options=GATED)
        held = _hold_every_worker(estimator, backend, gate, name)
        limited = EstimatorV2(mode=batch, options={**GATED, "max_execution_time": 60})
        job = limited.run([(bell(False), "ZZ")])
        assert not _in_lane(job)  # a per-job limit runs from its start, on a worker it has
        after = [estimator.run([(bell(False), "ZZ")]) for _ in range(3)]
        assert all(_in_lane(later) for later in after)
        # One lane takes the later jobs; the other gets none, so its worker goes to the
        # job queued in the session once its running job ends.
        assert len({later._grant.worker_id for later in after}) == 1
        gate.allow.remote(len(held))
        assert zz(job) == 1.0 and [zz(later) for later in after] == [1.0] * 3
        assert [zz(running) for running in held] == [1.0] * len(held)


def test_a_batch_gives_lanes_to_its_first_queued_jobs_before_the_pool_said_who_waits(backend):
    gate, name = new_gate()
    with Batch(backend) as batch:
        estimator = EstimatorV2(mode=batch, options=GATED)
        warm = [estimator.run([(bell(False), "ZZ")]) for _ in range(backend.num_workers)]
        assert [zz(job) for job in warm] == [1.0] * len(warm)  # their workers stay held
        held = _hold_every_worker(estimator, backend, gate, name)
        # The batch has not asked the pool whether another session waits: it has not
        # needed a lease. Its first queued job must not wait for the answer (one that
        # queued in the session would keep every later one there too).
        queued = [estimator.run([(bell(False), "ZZ")]) for _ in range(4)]
        assert all(_in_lane(job) for job in queued)
        gate.allow.remote(len(held))
        assert [zz(job) for job in queued] == [1.0] * 4
