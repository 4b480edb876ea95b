"""Back-pressure (issue 10): a session caps its queued jobs and their input bytes; past a cap
``run()`` raises QueueFullError in the caller, or waits up to ``queue_wait`` for room.

A job is held running at a gate the test opens (``tests.helpers``), so what is queued
behind it is known exactly.
"""

from __future__ import annotations

import math
import re
import threading

import numpy as np
import pytest
import ray
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from raysession import Batch, EstimatorV2, QueueFullError, RaySessionError, Session
from tests.conftest import wait_for
from tests.helpers import ansatz, bell, entered, gated, new_gate, observable, values

EXACT = {"default_precision": 0.0}


def zz(job) -> float:
    return float(job.result(timeout=120)[0].data.evs)


def bell_job(estimator: EstimatorV2):
    return estimator.run([(bell(False), "ZZ")])


def hold(estimator: EstimatorV2, gate_name: str):
    """A job that runs until the test opens the gate."""
    return estimator.run([(gated(bell(False), gate_name), "ZZ")])


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_full_queue_refuses_the_next_job_and_takes_jobs_again_once_it_drains(
    backend, monkeypatch, how
):
    if how == "environment":
        monkeypatch.setenv("RAYSESSION_MAX_QUEUED_JOBS", "2")
        session = Session(backend)
    else:
        session = Session(backend, max_queued_jobs=2)
    gate, name = new_gate()
    with session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        held = hold(estimator, name)
        wait_for(lambda: entered(gate) == 1)
        queued = [bell_job(estimator) for _ in range(2)]
        assert session.details().num_queued == 2
        with pytest.raises(QueueFullError, match=r"has 2 jobs queued.*max_queued_jobs=2") as caught:
            bell_job(estimator)
        message = str(caught.value)
        assert "RAYSESSION_MAX_QUEUED_JOBS" in message and "queue_wait" in message
        assert "Wait for queued jobs to finish" in message
        assert caught.value.session_id == session.session_id
        assert isinstance(caught.value, RaySessionError)
        # The refused job is not the session's, and took no sequence number.
        assert session.job_ids() == [held.job_id(), *(job.job_id() for job in queued)]
        assert session.details().num_jobs == 3
        gate.allow.remote(1)
        assert [zz(job) for job in (held, *queued)] == [1.0, 1.0, 1.0]
        after = bell_job(estimator)
        assert zz(after) == 1.0
        assert after.metrics()["sequence"] == 3
        assert session.job_ids()[-1] == after.job_id()


def test_a_byte_cap_refuses_a_big_pub_and_queues_a_small_one(backend):
    gate, name = new_gate()
    circuit, obs = ansatz(2), observable(2)
    small_values = values(circuit, 2)
    big_values = values(circuit, 20_000)  # 20 000 x 8 float64: 1.28 MB of parameter values
    with Session(backend, max_queued_bytes=200_000) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        held = hold(estimator, name)
        wait_for(lambda: entered(gate) == 1)
        small = estimator.run([(circuit, obs, small_values)])
        queued_bytes = session.details().queued_bytes
        assert 0 < queued_bytes < 200_000
        with pytest.raises(QueueFullError, match=r"max_queued_bytes=200000") as caught:
            estimator.run([(circuit, obs, big_values)])
        announced = int(re.search(r"this job's (\d+) more", str(caught.value))[1])
        assert announced >= big_values.nbytes
        assert f"has {queued_bytes} input bytes queued" in str(caught.value)
        assert session.job_ids() == [held.job_id(), small.job_id()]
        assert session.details().num_queued == 1
        gate.allow.remote(1)
        assert zz(held) == 1.0
        result = small.result(timeout=120)
    expected = AerEstimatorV2().run([(circuit, obs, small_values)]).result()[0].data.evs
    np.testing.assert_allclose(result[0].data.evs, expected, atol=1e-12)


def test_queue_wait_blocks_run_until_a_queued_job_starts(backend):
    gate, name = new_gate()
    with Session(backend, max_queued_jobs=1, queue_wait=120) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        held = hold(estimator, name)
        wait_for(lambda: entered(gate) == 1)
        queued = bell_job(estimator)
        seen_waiting = threading.Event()

        def open_gate_once_run_waits() -> None:
            wait_for(lambda: session.details().num_waiting == 1)
            seen_waiting.set()
            gate.allow.remote(1)

        opener = threading.Thread(target=open_gate_once_run_waits, daemon=True)
        opener.start()
        waited = bell_job(estimator)  # returns once `held` ends and `queued` starts
        opener.join(timeout=60)
        assert seen_waiting.is_set()
        assert ray.get(gate.counts.remote()) == (1, 1)
        assert session.details().num_waiting == 0
        assert [zz(job) for job in (held, queued, waited)] == [1.0, 1.0, 1.0]
        assert waited.metrics()["sequence"] == 2
        assert session.job_ids() == [held.job_id(), queued.job_id(), waited.job_id()]


def test_queue_wait_raises_queue_full_when_no_room_comes_in_time(backend):
    gate, name = new_gate()
    with Session(backend, max_queued_jobs=1, queue_wait=0.5) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        held = hold(estimator, name)
        wait_for(lambda: entered(gate) == 1)
        queued = bell_job(estimator)
        with pytest.raises(QueueFullError, match=r"max_queued_jobs=1.*after waiting 0.5 s"):
            bell_job(estimator)
        details = session.details()
        assert (details.num_waiting, details.num_queued, details.num_jobs) == (0, 1, 2)
        assert ray.get(gate.counts.remote()) == (1, 0)  # the gate never opened meanwhile
        gate.allow.remote(1)
        assert [zz(job) for job in (held, queued, bell_job(estimator))] == [1.0, 1.0, 1.0]


def test_a_batch_caps_its_queue_behind_its_running_jobs(backend):
    gate, name = new_gate()
    with Batch(backend, max_queued_jobs=1) as batch:
        estimator = EstimatorV2(mode=batch, options=EXACT)
        running = [hold(estimator, name) for _ in range(backend.num_workers)]
        wait_for(lambda: entered(gate) == len(running))
        queued = bell_job(estimator)
        with pytest.raises(QueueFullError, match="max_queued_jobs=1"):
            bell_job(estimator)
        assert len(batch.job_ids()) == len(running) + 1
        gate.allow.remote(len(running))
        assert [zz(job) for job in (*running, queued)] == [1.0] * (len(running) + 1)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("RAYSESSION_MAX_QUEUED_JOBS", "0"),
        ("RAYSESSION_MAX_QUEUED_JOBS", "ten"),
        ("RAYSESSION_MAX_QUEUED_JOBS", "1.5"),
        ("RAYSESSION_MAX_QUEUED_BYTES", "1GiB"),
        ("RAYSESSION_MAX_QUEUED_BYTES", "-1"),
    ],
)
def test_a_bad_cap_in_the_environment_raises_value_error_naming_it(backend, monkeypatch, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError, match=re.escape(f"{name}={raw!r} must be a whole number")):
        Session(backend)
    with pytest.raises(ValueError, match=re.escape(f"{name}={raw!r}")):
        Batch(backend, max_queued_jobs=5, max_queued_bytes=5)  # read even when both given


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"max_queued_jobs": 0}, "max_queued_jobs"),
        ({"max_queued_jobs": 2.5}, "max_queued_jobs"),
        ({"max_queued_jobs": True}, "max_queued_jobs"),
        ({"max_queued_bytes": -1}, "max_queued_bytes"),
        ({"queue_wait": -1}, "queue_wait"),
        ({"queue_wait": math.nan}, "queue_wait"),
        ({"queue_wait": math.inf}, "queue_wait"),
        ({"queue_wait": "10s"}, "queue_wait"),
    ],
)
def test_bad_queue_arguments_raise_value_error(backend, arguments, named):
    with pytest.raises(ValueError, match=named):
        Session(backend, **arguments)
