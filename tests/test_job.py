"""Job handles: the RuntimeJobV2 methods, and Ray's get/wait/await on them, across processes."""

from __future__ import annotations

import asyncio
import pickle
from datetime import UTC, datetime

import pytest
import ray
from qiskit.primitives import BasePrimitiveJob, PrimitiveResult
from qiskit.providers import JobStatus as QiskitJobStatus

from raysession import (
    EstimatorV2,
    ExecutionTimeoutError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    RuntimeJobV2,
    SamplerV2,
    Session,
    pool_status,
)
from tests.conftest import live_raysession_actors, wait_for
from tests.helpers import ansatz, bell, entered, failing, gated, new_gate, observable, values

EXACT = {"default_precision": 0.0}
# A job must reach its gate within this many seconds of starting, so that the test can see
# it held there before its max_execution_time stops it: generous, never reached in practice.
EXECUTION_LIMIT_S = 10.0


@pytest.fixture(scope="module")
def session(backend):
    session = Session(backend=backend)
    yield session
    session.close()


@pytest.fixture(scope="module")
def estimator(session):
    return EstimatorV2(mode=session, options={"default_precision": 0})


def _broken():
    return failing(bell(False))


def _held(estimator: EstimatorV2, gate_name: str):
    """A one-chunk job whose simulation waits at the gate ``gate_name``; <ZZ> is 1."""
    return estimator.run([(gated(bell(False), gate_name), "ZZ")])


def test_job_has_the_runtime_job_methods(session, estimator):
    job = estimator.run([(bell(False), "ZZ")])
    assert isinstance(job, BasePrimitiveJob) and isinstance(job, ray.ObjectRef)
    assert isinstance(job.job_id(), str) and len(job.job_id()) == 32
    assert job.session_id == session.session_id
    assert isinstance(job.creation_date, datetime)
    result = job.result()
    assert isinstance(result, PrimitiveResult)
    assert job.status() == "DONE" and job.status() == QiskitJobStatus.DONE
    assert job.done() and job.in_final_state()
    assert not job.running() and not job.cancelled() and not job.errored()
    assert job.error_message() is None
    assert job.cancel() is False


def test_metrics_have_real_timestamps_sequence_and_workers(session, estimator):
    circuit, obs = ansatz(3), observable(3)
    split = EstimatorV2(mode=session, options={**EXACT, "raysession": {"chunk_size": 2}})
    before = datetime.now(UTC)
    first = estimator.run([(bell(False), "ZZ")])
    second = split.run([(circuit, obs, values(circuit, 4))])  # two chunks of two sets
    first.result(timeout=120)
    result = second.result(timeout=120)
    after = datetime.now(UTC)
    live = {w.worker_id for w in pool_status().workers}
    metrics = [first.metrics(), second.metrics()]
    for job_metrics in metrics:
        stamps = {k: datetime.fromisoformat(v) for k, v in job_metrics["timestamps"].items()}
        assert before <= stamps["created"] <= stamps["running"] <= stamps["finished"] <= after
        assert stamps["queued"] == stamps["created"]
        ran = (stamps["finished"] - stamps["running"]).total_seconds()
        assert job_metrics["usage"]["seconds"] == pytest.approx(ran, abs=1e-5)
        assert job_metrics["usage"]["seconds"] > 0
        assert set(job_metrics["workers"]) <= live
        assert job_metrics["retries"] == 0
    assert metrics[1]["sequence"] == metrics[0]["sequence"] + 1
    assert metrics[0]["num_chunks"] == 1 and len(metrics[0]["workers"]) == 1
    assert metrics[1]["num_chunks"] == 2 and len(metrics[1]["workers"]) == 2
    # The workers are named per chunk too, in chunk order.
    assert sorted(metrics[1]["workers"]) == sorted(c["worker"] for c in metrics[1]["chunks"])
    assert result.metadata == {"version": 2}


def test_ray_get_single_and_list_and_wait(estimator):
    jobs = [estimator.run([(bell(False), "ZZ")]) for _ in range(3)]
    assert isinstance(ray.get(jobs[0]), PrimitiveResult)
    results = ray.get(jobs)
    assert [float(r[0].data.evs) for r in results] == pytest.approx([1.0] * 3)
    ready, pending = ray.wait(jobs, num_returns=3, timeout=60)
    assert len(ready) == 3 and not pending
    assert all(isinstance(r, RuntimeJobV2) for r in ready)


def test_await_job_gives_the_result(estimator):
    job = estimator.run([(bell(False), "ZZ")])

    async def main():
        return await job

    assert float(asyncio.run(main())[0].data.evs) == pytest.approx(1.0)


def test_sync_result_inside_an_event_loop_says_use_await(estimator):
    job = estimator.run([(bell(False), "ZZ")])

    async def main():
        with pytest.raises(RuntimeError, match="use `await job`"):
            job.result()
        return await job

    asyncio.run(main())


@ray.remote(num_cpus=0)
def _get_in_task(jobs):
    job = jobs[0]
    return job.job_id(), float(ray.get(job)[0].data.evs), str(job.status())


def test_handle_pickles_and_is_awaited_in_another_task(estimator):
    job = estimator.run([(bell(False), "ZZ")])
    copy = pickle.loads(pickle.dumps(job))
    assert copy.job_id() == job.job_id() and copy.session_id == job.session_id
    job_id, ev, status = ray.get(_get_in_task.remote([job]))
    assert (job_id, ev, status) == (job.job_id(), pytest.approx(1.0), "DONE")


@ray.remote(num_cpus=0)
def _submit_in_task(estimator):
    return [estimator.run([(bell(False), "ZZ")])]


def test_handle_created_in_a_task_works_in_the_driver(estimator):
    [job] = ray.get(_submit_in_task.remote(estimator))
    assert isinstance(job, RuntimeJobV2)
    assert float(ray.get(job)[0].data.evs) == pytest.approx(1.0)
    assert job.status() == "DONE"


def test_result_timeout_raises_a_timeout_error_subclass(session):
    gate, name = new_gate()
    job = _held(EstimatorV2(mode=session, options=EXACT), name)
    # The job cannot finish before the gate opens: every wait below must time out.
    with pytest.raises(JobTimeoutError, match=r"did not finish within 0\.01 s"):
        job.result(timeout=0.01)
    with pytest.raises(TimeoutError):
        job.result(timeout=0.01)
    assert not job.in_final_state()
    gate.allow.remote(1)
    assert float(job.result(timeout=120)[0].data.evs) == pytest.approx(1.0)


def test_failed_job_raises_job_failed_error_with_the_worker_error_as_cause(estimator):
    job = estimator.run([(_broken(), "ZZ")])
    with pytest.raises(JobFailedError, match=f"Job {job.job_id()} failed") as info:
        job.result()
    assert info.value.__cause__ is not None
    assert "not_a_gate" in str(info.value.__cause__)
    assert job.status() == "ERROR" and "not_a_gate" in job.error_message()
    with pytest.raises(JobFailedError):
        ray.get(job)

    async def main():
        await job

    with pytest.raises(JobFailedError):
        asyncio.run(main())


def test_cancel_queued_job_then_result_raises_job_cancelled(session):
    gate, name = new_gate()
    estimator = EstimatorV2(mode=session, options=EXACT)
    running = _held(estimator, name)
    wait_for(lambda: entered(gate) == 1)
    queued = estimator.run([(bell(False), "ZZ")])
    assert queued.status() == "QUEUED"
    assert queued.cancel() is True
    assert queued.cancelled() and queued.status() == QiskitJobStatus.CANCELLED
    with pytest.raises(JobCancelledError, match="cancelled"):
        queued.result(timeout=120)
    gate.allow.remote(1)
    assert float(running.result(timeout=120)[0].data.evs) == pytest.approx(1.0)


def test_cancel_running_job_stops_it_and_the_session_goes_on(session):
    gate, name = new_gate()
    job = _held(EstimatorV2(mode=session, options=EXACT), name)
    wait_for(lambda: entered(gate) == 1)
    assert job.running()
    assert job.cancel() is True
    with pytest.raises(JobCancelledError):
        job.result(timeout=30)
    assert job.status() == "CANCELLED"
    # Stopped while held at the gate: it never got past it.
    assert ray.get(gate.counts.remote()) == (1, 0)
    after = EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")])
    assert float(after.result(timeout=120)[0].data.evs) == pytest.approx(1.0)


def test_max_execution_time_stops_a_long_job_with_its_own_error(session):
    gate, name = new_gate()
    limited = {**EXACT, "max_execution_time": EXECUTION_LIMIT_S}
    estimator = EstimatorV2(mode=session, options=limited)
    job = _held(estimator, name)
    wait_for(lambda: entered(gate) == 1, timeout=EXECUTION_LIMIT_S)
    assert job.status() == "RUNNING"  # held at the gate before its time ran out
    with pytest.raises(ExecutionTimeoutError, match="max_execution_time") as info:
        job.result(timeout=EXECUTION_LIMIT_S * 6)
    assert isinstance(info.value, JobFailedError)
    assert job.status() == "ERROR" and "max_execution_time" in job.error_message()
    # Stopped while held at the gate: it never got past it.
    assert ray.get(gate.counts.remote()) == (1, 0)
    fine = SamplerV2(mode=session).run([bell()], shots=10)
    assert fine.result(timeout=120)[0].data.meas.num_shots == 10


def test_error_and_cancelled_status_are_known_after_the_session_actor_exited(backend):
    gate, name = new_gate()
    session = Session(backend=backend)
    estimator = EstimatorV2(mode=session, options=EXACT)
    running = _held(estimator, name)
    wait_for(lambda: entered(gate) == 1)
    # Both wait behind the held job: one to fail when it runs, one to be cancelled.
    failed = estimator.run([(_broken(), "ZZ")])
    cancelled = estimator.run([(bell(False), "ZZ")])
    assert cancelled.cancel() is True
    session.close()
    gate.allow.remote(1)
    assert float(running.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
    # Read while the actor lives, from copies, so that the handles below cache nothing.
    live_failed = pickle.loads(pickle.dumps(failed))
    wait_for(lambda: live_failed.in_final_state())
    live_message = live_failed.error_message()
    assert "not_a_gate" in live_message
    wait_for(lambda: f"session-{session.session_id}" not in live_raysession_actors())

    assert failed.status() == "ERROR" and failed.errored()
    assert failed.error_message() == live_message
    with pytest.raises(JobFailedError, match=f"Job {failed.job_id()} failed") as info:
        failed.result(timeout=30)
    assert "not_a_gate" in str(info.value.__cause__)

    assert cancelled.status() == "CANCELLED" and cancelled.cancelled()
    assert cancelled.error_message() is None
    with pytest.raises(JobCancelledError, match=f"Job {cancelled.job_id()} was cancelled"):
        cancelled.result(timeout=30)
