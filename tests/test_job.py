"""Job handles: the RuntimeJobV2 methods, and Ray's get/wait/await on them, across processes."""

from __future__ import annotations

import asyncio
import pickle
from datetime import datetime

import pytest
import ray
from qiskit.circuit import Gate
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
from tests.conftest import wait_for
from tests.helpers import ONE_CHUNK, bell, slow_pub


@pytest.fixture(scope="module")
def session(backend):
    session = Session(backend=backend)
    yield session
    session.close()


@pytest.fixture(scope="module")
def estimator(session):
    return EstimatorV2(mode=session, options={"default_precision": 0})


def _broken():
    qc = bell(False)
    qc.append(Gate("not_a_gate", 1, []), [0])
    return qc


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


def test_metrics_have_real_timestamps_sequence_and_workers(backend, estimator):
    job = estimator.run([(bell(False), "ZZ")])
    job.result()
    metrics = job.metrics()
    stamps = {k: datetime.fromisoformat(v) for k, v in metrics["timestamps"].items()}
    assert stamps["created"] <= stamps["running"] <= stamps["finished"]
    assert stamps["queued"] == stamps["created"]
    assert metrics["usage"]["seconds"] >= 0
    running = {w.worker_id for w in pool_status().workers}
    assert metrics["workers"] and set(metrics["workers"]) <= running
    assert metrics["sequence"] >= 0 and metrics["num_chunks"] == 1


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
    job = EstimatorV2(mode=session, options=ONE_CHUNK).run([slow_pub(150)])
    with pytest.raises(JobTimeoutError, match=r"did not finish within 0\.01 s"):
        job.result(timeout=0.01)
    with pytest.raises(TimeoutError):
        job.result(timeout=0.01)
    job.result()


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
    estimator = EstimatorV2(mode=session, options=ONE_CHUNK)
    running = estimator.run([slow_pub(150)])
    queued = estimator.run([(bell(False), "ZZ")])
    assert queued.status() == "QUEUED"
    assert queued.cancel() is True
    assert queued.cancelled() and queued.status() == QiskitJobStatus.CANCELLED
    with pytest.raises(JobCancelledError, match="cancelled"):
        queued.result()
    running.result()


def test_cancel_running_job_stops_it_and_the_session_goes_on(session):
    estimator = EstimatorV2(mode=session, options=ONE_CHUNK)
    job = estimator.run([slow_pub(3000)])
    wait_for(lambda: job.running())
    assert job.cancel() is True
    with pytest.raises(JobCancelledError):
        job.result(timeout=30)
    after = EstimatorV2(mode=session, options={"default_precision": 0}).run([(bell(False), "ZZ")])
    assert float(after.result(timeout=120)[0].data.evs) == pytest.approx(1.0)


def test_max_execution_time_stops_a_long_job_with_its_own_error(session):
    estimator = EstimatorV2(mode=session, options={**ONE_CHUNK, "max_execution_time": 0.5})
    job = estimator.run([slow_pub(3000)])
    with pytest.raises(ExecutionTimeoutError, match="max_execution_time") as info:
        job.result(timeout=60)
    assert isinstance(info.value, JobFailedError)
    assert job.status() == "ERROR"
    fine = SamplerV2(mode=session).run([bell()], shots=10)
    assert fine.result(timeout=120)[0].data.meas.num_shots == 10
