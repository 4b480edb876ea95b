"""The fast path and result delivery: who owns a result, where it comes from, and what a
handle says once its result, session or Ray connection is gone."""

from __future__ import annotations

import numpy as np
import pytest
import ray
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from raysession import (
    Batch,
    EstimatorV2,
    QiskitRuntimeService,
    ResultUnavailableError,
    RuntimeJobV2,
    Session,
)
from raysession._courier import deliver
from raysession._session_records import KEEP_RESULTS
from raysession.job import _keep_last_grant as keep_last_grant
from tests.conftest import wait_for
from tests.helpers import ansatz, bell, entered, gated, new_gate, observable, values

EXACT = {"default_precision": 0.0}


def _evs(job: RuntimeJobV2) -> float:
    return float(job.result(timeout=120)[0].data.evs)


def test_a_job_an_idle_session_can_start_goes_straight_to_a_worker_and_back(backend):
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        jobs = [estimator.run([(bell(False), "ZZ")]) for _ in range(3)]
        first = jobs[0]
        assert first._granted  # the answer to submit named the worker
        assert first.owner_address() == ray.put(None).owner_address()  # owned here
        assert all(_evs(job) == pytest.approx(1.0) for job in jobs)
        # The two that arrived while the first ran waited in the queue, in FIFO order.
        assert not jobs[1]._granted and not jobs[2]._granted
        sequences = [job.metrics()["sequence"] for job in jobs]
        assert sequences == sorted(sequences)
        assert first.status() == "DONE" and first.metrics()["workers"]


def test_a_split_job_is_joined_by_the_courier_and_equals_aer(backend):
    circuit, obs = ansatz(4), observable(4)
    vals = values(circuit, 40)
    with Session(backend=backend) as session:
        job = EstimatorV2(mode=session, options={**EXACT, "raysession": {"chunk_size": 10}}).run(
            [(circuit, obs, vals)]
        )
        result = job.result(timeout=120)
        assert not job._granted and job.metrics()["num_chunks"] == 4
    expected = AerEstimatorV2().run([(circuit, obs, vals)]).result()[0].data.evs
    np.testing.assert_allclose(result[0].data.evs, expected, atol=1e-12)


def test_a_circuit_edited_in_place_after_its_first_run_gives_the_edited_numbers(backend):
    circuit = bell(False)
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        assert _evs(estimator.run([(circuit, "ZZ")])) == pytest.approx(1.0)
        circuit.x(0)  # |01> + |10>: ZZ is now -1
        assert _evs(estimator.run([(circuit, "ZZ")])) == pytest.approx(-1.0)
        circuit.x(0)
        circuit.x(1)
        assert _evs(estimator.run([(circuit, "ZZ")])) == pytest.approx(-1.0)


@pytest.mark.parametrize("storage", ["stored", "off"])
def test_a_pruned_result_asked_for_by_another_process_is_read_from_storage_or_refused(
    backend, storage, monkeypatch
):
    if storage == "off":
        monkeypatch.setenv("RAYSESSION_STORAGE", "off")
    with Batch(backend=backend) as batch:
        # Two PUBs in chunks of one: split jobs, which the session runs and keeps the
        # refs of (a whole job granted a worker belongs to its submitter alone, below).
        estimator = EstimatorV2(mode=batch, options={**EXACT, "raysession": {"chunk_size": 1}})
        pubs = [(bell(False), "ZZ")] * 2
        jobs = [estimator.run(pubs) for _ in range(KEEP_RESULTS + 110)]
        assert not any(job._granted for job in jobs)
        assert all(_evs(job) == pytest.approx(1.0) for job in jobs)
        service = QiskitRuntimeService()
        recent = service.job(jobs[-1].job_id())
        assert _evs(recent) == pytest.approx(1.0)
        # The session dropped the oldest result's refs: it comes from storage, if any.
        old = service.job(jobs[0].job_id())
        if storage == "off":
            with pytest.raises(ResultUnavailableError, match="pruned"):
                old.result(timeout=60)
        else:
            assert old._stored and _evs(old) == pytest.approx(1.0)
            # And through the session's courier, which the session points to storage.
            via_courier = RuntimeJobV2(
                deliver(batch.session_id, jobs[0].job_id()),
                job_id=jobs[0].job_id(),
                session_id=batch.session_id,
                actor=batch._actor,
                created=0.0,
            )
            assert _evs(via_courier) == pytest.approx(1.0)
        # The submitter owns its results: its own handle still reads the oldest one.
        assert _evs(jobs[0]) == pytest.approx(1.0)


def test_a_sessions_next_small_job_goes_ahead_to_its_last_worker_and_runs_there(backend):
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        first = estimator.run([(bell(False), "ZZ")])
        assert first._granted and not first._ran_ahead  # nothing ran before it here
        assert _evs(first) == pytest.approx(1.0)
        flipped = bell(False)
        flipped.x(0)
        second = estimator.run([(flipped, "ZZ")])  # another circuit, sent with its submit
        assert second._ran_ahead and second._granted
        assert _evs(second) == pytest.approx(-1.0)
        assert second.metrics()["workers"] == first.metrics()["workers"]
        assert second.status() == "DONE"
        # Having gone ahead, it opened a streak there (tests/test_streaks.py). Only a job
        # submitted just after one of its session's results was read goes to that worker,
        # once: one submitted before is not sent anywhere until it is granted.
        assert second._streak is not None
        third, fourth = (estimator.run([(bell(False), "ZZ")]) for _ in range(2))
        assert third._in_streak is not None
        assert fourth._in_streak is None and not fourth._ran_ahead
        assert [_evs(third), _evs(fourth)] == pytest.approx([1.0, 1.0])


def test_a_job_sent_ahead_to_a_busy_session_is_refused_there_and_runs_once_in_order(backend):
    (gate_a, name_a), (gate_b, name_b) = new_gate(), new_gate()
    gated_options = {**EXACT, "raysession": {"circuit_cache": False}}
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=gated_options)
        warm = estimator.run([(bell(False), "ZZ")])
        assert _evs(warm) == pytest.approx(1.0)
        a = estimator.run([(gated(bell(False), name_a), "ZZ")])
        assert a._ran_ahead
        wait_for(lambda: entered(gate_a) == 1, timeout=120)  # a runs on the worker
        # As if another job of this process had just ended on that worker: b goes ahead
        # to it, but the session is busy with a, so it queues b and refuses it there.
        keep_last_grant(session.session_id, warm._grant)
        b = estimator.run([(gated(bell(False), name_b), "ZZ")])
        assert not b._ran_ahead and not b._granted
        assert b.status() == "QUEUED"
        ray.get([gate_b.allow.remote(), gate_a.allow.remote()])
        assert [_evs(a), _evs(b)] == pytest.approx([1.0, 1.0])
        assert entered(gate_b) == 1  # the copy sent ahead never ran
        metrics = [job.metrics() for job in (a, b)]
        assert [m["sequence"] for m in metrics] == [1, 2]
        assert metrics[0]["timestamps"]["finished"] <= metrics[1]["timestamps"]["running"]


def test_a_granted_job_result_is_its_submitters_and_storages_only(backend, monkeypatch):
    monkeypatch.setenv("RAYSESSION_STORAGE", "off")
    with Session(backend=backend) as session:
        job = EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")])
        assert job._granted and _evs(job) == pytest.approx(1.0)
        # Another reader goes through the session, which never had the result or a ref.
        with pytest.raises(ResultUnavailableError, match="belongs to the process that"):
            QiskitRuntimeService().job(job.job_id()).result(timeout=60)
        assert _evs(job) == pytest.approx(1.0)


def test_a_result_asked_for_before_its_job_was_submitted_is_refused_not_awaited(backend):
    with Session(backend=backend) as session:
        handle = RuntimeJobV2(
            deliver(session.session_id, "no-such-job"),
            job_id="no-such-job",
            session_id=session.session_id,
            actor=session._actor,
            created=0.0,
        )
        with pytest.raises(ResultUnavailableError, match="has no job no-such-job"):
            handle.result(timeout=60)


def test_a_queued_job_waits_at_its_session_not_in_the_submitter(backend):
    gate, name = new_gate()
    with Session(backend=backend) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        held = estimator.run([(gated(bell(False), name), "ZZ")])
        wait_for(lambda: entered(gate) == 1)
        queued = estimator.run([(bell(False), "ZZ")])  # returns at once
        assert queued.status() == "QUEUED"
        gate.allow.remote(1)
        assert _evs(held) == pytest.approx(1.0) and _evs(queued) == pytest.approx(1.0)


# Last: it ends this module's Ray connection (the module fixture shuts the new one down).
def test_a_handle_from_an_earlier_ray_connection_says_so_and_cannot_cancel(backend):
    session = Session(backend=backend)
    job = EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")])
    assert _evs(job) == pytest.approx(1.0)
    session.close()
    # Job mode too: its hidden batch lives on this connection.
    assert _evs(
        EstimatorV2(mode=backend, options=EXACT).run([(bell(False), "ZZ")])
    ) == pytest.approx(1.0)
    ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    for read in (job.result, job.status, job.metrics, job.error_message):
        with pytest.raises(ResultUnavailableError, match="earlier Ray connection"):
            read()
    assert job.cancel() is False
    # Job mode on the same backend object opens a new hidden batch on the new connection.
    again = EstimatorV2(mode=backend, options=EXACT).run([(bell(False), "ZZ")])
    assert _evs(again) == pytest.approx(1.0)
