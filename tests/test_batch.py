"""Batch: the session machinery without the one-job-at-a-time rule."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pytest
import ray
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from raysession import (
    Batch,
    EstimatorV2,
    ExecutionTimeoutError,
    JobCancelledError,
    JobTimeoutError,
    SamplerV2,
    Session,
    SessionState,
    pool_status,
)
from tests.conftest import wait_for
from tests.helpers import ansatz, bell, entered, gated, new_gate, observable, values

# No cache: every job unpickles its circuit, so every job of a gated PUB waits at the gate.
GATED = {"default_precision": 0.0, "raysession": {"circuit_cache": False}}
# How long the test holds jobs at a gate, or leaves a batch idle, to measure usage against.
HOLD_S = 1.0
# A job must reach its gate within this many seconds of starting, so that the test can see
# it held there before its max_execution_time stops it: generous, never reached in practice.
EXECUTION_LIMIT_S = 10.0


def gated_pub(gate_name: str, seed: int):
    """A one-chunk estimator PUB that waits at the gate, and the PUB without the gate."""
    circuit, obs = ansatz(3), observable(3)
    vals = values(circuit, 3, seed=seed)
    return (gated(circuit, gate_name), obs, vals), (circuit, obs, vals)


def check(job, plain_pub) -> None:
    """The job's numbers equal qiskit_aer's own estimator, and no chunk of it ran twice."""
    expected = AerEstimatorV2().run([plain_pub]).result()[0].data.evs
    np.testing.assert_allclose(job.result(timeout=120)[0].data.evs, expected, atol=1e-12)
    assert job.metrics()["retries"] == 0


def span_s(jobs) -> float:
    """Wall-clock seconds from the first job's start to the last job's end."""
    stamps = [job.metrics()["timestamps"] for job in jobs]
    start = min(datetime.fromisoformat(s["running"]) for s in stamps)
    end = max(datetime.fromisoformat(s["finished"]) for s in stamps)
    return (end - start).total_seconds()


def test_batch_is_a_session_in_batch_mode(backend):
    with Batch(backend=backend) as batch:
        assert isinstance(batch, Session)
        assert batch.details().mode == "batch"
        assert Session.from_id(batch.session_id).mode == "batch"
        assert isinstance(Session.from_id(batch.session_id), Batch)


def test_batch_runs_jobs_concurrently_up_to_the_worker_count(backend):
    assert backend.num_workers == 2
    gate, name = new_gate()
    pubs = [gated_pub(name, seed) for seed in range(3)]
    with Batch(backend=backend) as batch:
        estimator = EstimatorV2(options=GATED)
        jobs = [estimator.run([pub]) for pub, _ in pubs]
        # Two jobs simulate at once, one on each worker; the third waits in the batch.
        wait_for(lambda: entered(gate) == 2)
        assert [job.status() for job in jobs] == ["RUNNING", "RUNNING", "QUEUED"]
        busy = [w for w in pool_status().workers if w.state == "busy"]
        assert [w.client for w in busy] == [batch.session_id] * 2, busy
        assert ray.get(gate.counts.remote()) == (2, 0)
        # One job may pass: its worker comes free, and only then does the third start.
        gate.allow.remote(1)
        wait_for(lambda: entered(gate) == 3)
        assert ray.get(gate.counts.remote()) == (3, 1)
        assert jobs[2].status() == "RUNNING"
        gate.allow.remote(2)
        for job, (_, plain) in zip(jobs, pubs, strict=True):
            check(job, plain)


def test_batch_usage_is_execution_time_not_wall_clock(backend):
    """Jobs that run at once: usage counts each job's execution, more than the span."""
    gate, name = new_gate()
    pubs = [gated_pub(name, seed) for seed in range(2)]
    with Batch(backend=backend) as batch:
        estimator = EstimatorV2(options=GATED)
        jobs = [estimator.run([pub]) for pub, _ in pubs]
        wait_for(lambda: entered(gate) == 2)
        held = time.time()  # both jobs run from before here ...
        with pytest.raises(JobTimeoutError):
            jobs[0].result(timeout=HOLD_S)  # (neither can finish while the gate is shut)
        released = time.time()  # ... until after here
        gate.allow.remote(2)
        for job, (_, plain) in zip(jobs, pubs, strict=True):
            check(job, plain)
        executed = sum(job.metrics()["usage"]["seconds"] for job in jobs)
        usage = batch.usage()
    assert usage == pytest.approx(executed)
    # The jobs overlapped for at least the hold, which usage counts twice and the span once.
    assert usage - span_s(jobs) >= (released - held) - 1e-5
    assert released - held >= HOLD_S * 0.99


def test_batch_usage_leaves_out_the_time_between_jobs(backend):
    """Jobs apart in time: usage counts their execution, less than the span."""
    with Batch(backend=backend, interactive_timeout=HOLD_S) as batch:
        estimator = EstimatorV2(options={"default_precision": 0.0})
        first = estimator.run([(bell(False), "ZZ")])
        assert float(first.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
        finished = time.time()
        # Inactive: nothing ran for HOLD_S since the first job finished.
        wait_for(lambda: batch.details().state is SessionState.INACTIVE)
        submitted = time.time()
        second = estimator.run([(bell(False), "ZZ")])
        assert float(second.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
        jobs = [first, second]
        executed = sum(job.metrics()["usage"]["seconds"] for job in jobs)
        usage = batch.usage()
    assert usage == pytest.approx(executed)
    # The idle time between the jobs is in the span and not in usage.
    assert span_s(jobs) - usage >= (submitted - finished) - 1e-5
    assert span_s(jobs) - usage >= HOLD_S * 0.99


def test_cancelling_a_running_job_of_a_batch_loses_no_work_of_the_others(backend):
    gate, name = new_gate()
    pubs = [gated_pub(name, seed) for seed in range(3)]
    with Batch(backend=backend) as batch:
        estimator = EstimatorV2(options=GATED)
        stopped, running, queued = (estimator.run([pub]) for pub, _ in pubs)
        wait_for(lambda: entered(gate) == 2)
        assert (stopped.status(), running.status(), queued.status()) == (
            "RUNNING",
            "RUNNING",
            "QUEUED",
        )
        assert stopped.cancel() is True
        with pytest.raises(JobCancelledError):
            stopped.result(timeout=60)
        # The slot it held goes to the queued job; the other keeps running, still held.
        wait_for(lambda: entered(gate) == 3)
        assert running.status() == "RUNNING" and queued.status() == "RUNNING"
        # Three permits: the stopped job's worker died at the gate and its call still waits.
        gate.allow.remote(3)
        check(running, pubs[1][1])
        check(queued, pubs[2][1])
        assert entered(gate) == 3  # neither ran again
        assert stopped.status() == "CANCELLED"
        assert batch.status() == "In progress, accepting new jobs"


def test_a_batch_job_stopped_by_max_execution_time_loses_no_work_of_the_others(backend):
    gate, name = new_gate()
    pubs = [gated_pub(name, seed) for seed in range(3)]
    with Batch(backend=backend) as batch:
        limited = EstimatorV2(options={**GATED, "max_execution_time": EXECUTION_LIMIT_S})
        estimator = EstimatorV2(options=GATED)
        stopped = limited.run([pubs[0][0]])
        running, queued = (estimator.run([pub]) for pub, _ in pubs[1:])
        wait_for(lambda: entered(gate) == 2, timeout=EXECUTION_LIMIT_S)
        assert (stopped.status(), running.status(), queued.status()) == (
            "RUNNING",
            "RUNNING",
            "QUEUED",
        )
        with pytest.raises(ExecutionTimeoutError, match="max_execution_time"):
            stopped.result(timeout=EXECUTION_LIMIT_S * 6)
        wait_for(lambda: entered(gate) == 3)
        assert running.status() == "RUNNING" and queued.status() == "RUNNING"
        gate.allow.remote(3)  # as above: one permit for the stopped job's parked call
        check(running, pubs[1][1])
        check(queued, pubs[2][1])
        assert entered(gate) == 3
        assert stopped.status() == "ERROR"
        assert batch.status() == "In progress, accepting new jobs"


def test_batch_close_drains_and_rejects(backend):
    batch = Batch(backend=backend)
    sampler = SamplerV2(mode=batch)
    jobs = [sampler.run([bell()], shots=10) for _ in range(4)]
    batch.close()
    for job in jobs:
        assert job.result()[0].data.meas.num_shots == 10
    assert batch.status() == "Closed"
