"""Batch: the session machinery without the one-job-at-a-time rule."""

from __future__ import annotations

import pytest

from raysession import Batch, EstimatorV2, SamplerV2, Session
from tests.helpers import ONE_CHUNK, bell, slow_pub


def test_batch_is_a_session_in_batch_mode(backend):
    with Batch(backend=backend) as batch:
        assert isinstance(batch, Session)
        assert batch.details().mode == "batch"
        assert Session.from_id(batch.session_id).mode == "batch"
        assert isinstance(Session.from_id(batch.session_id), Batch)


def test_batch_runs_jobs_concurrently_up_to_the_worker_count(backend):
    with Batch(backend=backend) as batch:
        estimator = EstimatorV2(options=ONE_CHUNK)
        jobs = [estimator.run([slow_pub(150)]) for _ in range(3)]
        for job in jobs:
            job.result()
        metrics = sorted(
            (batch.job_info(j.job_id()).metrics for j in jobs), key=lambda m: m.sequence
        )
    first, second, third = metrics
    assert second.running < first.finished  # two workers: the first two overlap
    assert third.running >= min(first.finished, second.finished)  # the third waited for a slot


def test_batch_usage_is_execution_time_not_wall_clock(backend):
    with Batch(backend=backend) as batch:
        estimator = EstimatorV2(options=ONE_CHUNK)
        jobs = [estimator.run([slow_pub(100)]) for _ in range(2)]
        for job in jobs:
            job.result()
        executed = sum(batch.job_info(j.job_id()).metrics.execution_s for j in jobs)
        assert batch.usage() == pytest.approx(executed)


def test_batch_close_drains_and_rejects(backend):
    batch = Batch(backend=backend)
    sampler = SamplerV2(mode=batch)
    jobs = [sampler.run([bell()], shots=10) for _ in range(4)]
    batch.close()
    for job in jobs:
        assert job.result()[0].data.meas.num_shots == 10
    assert batch.status() == "Closed"
