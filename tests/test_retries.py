"""Opt-in retries (issue 10): ``options.raysession.max_retries`` runs a job again after a
transient backend failure (its worker lost, no node able to place its worker); errors of
the job itself never run again, and ``job.metrics()`` records every attempt.

The module's Ray runs with ``RAYSESSION_MAX_CHUNK_RETRIES=0`` (a chunk whose worker dies
fails its job at once, with WorkerLostError) and a short placement timeout, both in the
environment before Ray starts so that every Ray process reads them. A running job is
held at a gate the test opens (``tests.helpers``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise

import numpy as np
import pytest
import ray
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from raysession import (
    AerBackend,
    BackendUnavailableError,
    EstimatorOptions,
    EstimatorV2,
    ExecutionTimeoutError,
    JobFailedError,
    Session,
    WorkerLostError,
    pool_status,
)
from tests.conftest import wait_for
from tests.helpers import ansatz, bell, entered, failing, gated, new_gate, observable, values

PLACEMENT_S = 2.0
EXACT = {"default_precision": 0.0}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """Overrides conftest's Ray: the same 2 CPUs, no chunk reruns, a short placement timeout."""
    if ray.is_initialized():
        ray.shutdown()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAYSESSION_MAX_CHUNK_RETRIES", "0")
        patch.setenv("RAYSESSION_PLACEMENT_TIMEOUT_S", str(PLACEMENT_S))
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
        try:
            yield
        finally:
            ray.shutdown()


def estimator_for(session: Session, max_retries: int, **options) -> EstimatorV2:
    return EstimatorV2(
        mode=session, options={**EXACT, **options, "raysession": {"max_retries": max_retries}}
    )


def in_order(attempts: list[dict]) -> bool:
    """Attempts numbered from 1, each started after the previous one finished."""
    stamps = [
        (datetime.fromisoformat(a["started"]), datetime.fromisoformat(a["finished"]))
        for a in attempts
    ]
    numbered = [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    ordered = all(start <= end for start, end in stamps)
    return (
        numbered
        and ordered
        and all(end <= next_start for (_, end), (next_start, _) in pairwise(stamps))
    )


def kill_the_worker_of(session: Session) -> str:
    (busy,) = [w.worker_id for w in pool_status().workers if w.client == session.session_id]
    ray.kill(ray.get_actor(busy, namespace="raysession"))
    return busy


def test_max_retries_is_validated():
    assert EstimatorOptions().raysession.max_retries == 0
    for bad in (-1, 11, 1.5, "two"):
        with pytest.raises(ValueError, match="max_retries"):
            EstimatorOptions(raysession={"max_retries": bad})


def test_a_job_whose_worker_is_killed_succeeds_on_its_second_attempt():
    gate, name = new_gate()
    circuit, obs = ansatz(3), observable(3)
    vals = values(circuit, 4)
    with Session(AerBackend(max_workers=1)) as session:
        job = estimator_for(session, 1).run([(gated(circuit, name), obs, vals)])
        wait_for(lambda: entered(gate) == 1)
        killed = kill_the_worker_of(session)
        wait_for(lambda: entered(gate) == 2)  # the second attempt reached the gate
        assert job.status() == "RUNNING"
        gate.allow.remote(2)  # the killed worker's call may still be parked at the gate
        result = job.result(timeout=120)
        metrics = job.metrics()
        assert metrics["num_attempts"] == 2
        first, second = metrics["attempts"]
        assert first["error_type"] == "WorkerLostError"
        assert "crashed its worker" in first["error_message"]
        assert "RAYSESSION_MAX_CHUNK_RETRIES=0" in first["error_message"]
        assert second["error_type"] is None and second["error_message"] is None
        assert in_order(metrics["attempts"])
        assert killed not in metrics["workers"]
        assert job.status() == "DONE"
    expected = AerEstimatorV2().run([(circuit, obs, vals)]).result()[0].data.evs
    np.testing.assert_allclose(result[0].data.evs, expected, atol=1e-12)


def test_without_retries_a_killed_worker_fails_the_job_with_worker_lost_error():
    gate, name = new_gate()
    with Session(AerBackend(max_workers=1)) as session:
        estimator = estimator_for(session, 0)
        job = estimator.run([(gated(bell(False), name), "ZZ")])
        wait_for(lambda: entered(gate) == 1)
        kill_the_worker_of(session)
        with pytest.raises(WorkerLostError, match="crashed its worker") as caught:
            job.result(timeout=120)
        assert isinstance(caught.value, JobFailedError)
        assert "max_retries" in str(caught.value)
        metrics = job.metrics()
        assert metrics["num_attempts"] == 1
        (only,) = metrics["attempts"]
        assert only["attempt"] == 1 and only["error_type"] == "WorkerLostError"
        assert job.status() == "ERROR" and entered(gate) == 1
        gate.allow.remote(1)  # the killed worker's parked call
        assert float(estimator.run([(bell(False), "ZZ")]).result(timeout=120)[0].data.evs) == 1.0


def test_a_job_no_node_can_place_fails_after_one_plus_max_retries_attempts():
    with Session(AerBackend(num_cpus_per_worker=64)) as session:
        job = estimator_for(session, 2).run([(bell(False), "ZZ")])
        with pytest.raises(BackendUnavailableError, match="No node could place"):
            job.result(timeout=PLACEMENT_S * 60)
        metrics = job.metrics()
        assert metrics["num_attempts"] == 3
        assert in_order(metrics["attempts"])
        for attempt in metrics["attempts"]:
            assert attempt["error_type"] == "BackendUnavailableError"
            assert "No node could place" in attempt["error_message"]
        assert job.status() == "ERROR"


def test_retries_stop_at_the_jobs_max_execution_time():
    limit = PLACEMENT_S * 2.5  # time for one failed placement and part of the next
    with Session(AerBackend(num_cpus_per_worker=64)) as session:
        job = estimator_for(session, 10, max_execution_time=limit).run([(bell(False), "ZZ")])
        with pytest.raises(ExecutionTimeoutError, match="max_execution_time"):
            job.result(timeout=PLACEMENT_S * 60)
        attempts = job.metrics()["attempts"]
        assert attempts[-1]["error_type"] == "ExecutionTimeoutError"
        assert attempts[-1]["finished"] is not None
        assert all(a["error_type"] == "BackendUnavailableError" for a in attempts[:-1])
        assert len(attempts) < 11


def test_a_job_that_fails_in_its_own_code_is_never_retried():
    with Session(AerBackend()) as session:
        estimator = estimator_for(session, 3)
        job = estimator.run([(failing(bell(False)), "ZZ")])
        with pytest.raises(JobFailedError) as caught:
            job.result(timeout=120)
        assert not isinstance(caught.value, WorkerLostError)
        assert "not_a_gate" in str(caught.value.__cause__)
        metrics = job.metrics()
        assert metrics["num_attempts"] == 1
        (only,) = metrics["attempts"]
        assert only["error_type"] == "JobFailedError" and "not_a_gate" in only["error_message"]
        assert float(estimator.run([(bell(False), "ZZ")]).result(timeout=120)[0].data.evs) == 1.0
