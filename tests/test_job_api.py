"""Issue 9: results carry exactly Aer's metadata; raysession's details are in job.metrics();
the job API of qiskit-ibm-runtime's RuntimeJobV2 (usage, backend, tags, wait_for_final_state)
and QiskitRuntimeService.jobs() with its filters."""

from __future__ import annotations

import pytest
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

from raysession import (
    AerBackend,
    EstimatorV2,
    JobTimeoutError,
    SamplerV2,
    Session,
    SessionNotFoundError,
    list_sessions,
    pool_status,
)
from raysession._submit import submit_job
from raysession.backends._partition import TIMING_PREFIX, chunk_seed
from raysession.ibm import QiskitRuntimeService
from raysession.options import SamplerOptions
from tests.conftest import wait_for
from tests.helpers import ansatz, bell, entered, gated, new_gate, observable, values

SEED = 11


@pytest.fixture(scope="module")
def session(backend):
    session = Session(backend=backend)
    yield session
    session.close()


@pytest.fixture(scope="module")
def service():
    return QiskitRuntimeService()


def _labelled(circuit):
    circuit = circuit.copy()
    circuit.metadata = {"experiment": "issue-9"}
    return circuit


def _without_timings(metadata):
    """A PUB's metadata with Aer's run timings blanked: no two runs, Aer's own, share them."""
    simulator = {
        key: (None if key.startswith(TIMING_PREFIX) else value)
        for key, value in metadata["simulator_metadata"].items()
    }
    return {**metadata, "simulator_metadata": simulator}


def _assert_same_metadata(ours, aer):
    assert ours.metadata == aer.metadata == {"version": 2}
    for got, want in zip(ours, aer, strict=True):
        assert set(got.metadata) == set(want.metadata)
        assert set(got.metadata["simulator_metadata"]) == set(want.metadata["simulator_metadata"])
        assert _without_timings(got.metadata) == _without_timings(want.metadata)
        assert got.metadata["circuit_metadata"] == {"experiment": "issue-9"}


def _sampler_pubs():
    circuit = ansatz(3)
    circuit.measure_all()
    return [(_labelled(bell()), None, 300), (_labelled(circuit), values(circuit, 12), 200)]


# ------------------------------------------------------------------ Aer's metadata, exactly


@pytest.mark.parametrize("chunk_size", [256, 4], ids=["one-chunk", "split"])
def test_estimator_metadata_equals_aers_exactly(session, chunk_size):
    circuit, obs = _labelled(ansatz(3)), observable(3)
    pubs = [(circuit, obs, values(circuit, 12)), (_labelled(bell(False)), "ZZ")]
    options = {
        "simulator": {"seed_simulator": SEED},
        "default_precision": 0.1,
        "raysession": {"chunk_size": chunk_size},
    }
    job = EstimatorV2(mode=session, options=options).run(pubs)
    ours = job.result(timeout=120)
    aer_options = {"default_precision": 0.1, "run_options": {"seed_simulator": SEED}}
    _assert_same_metadata(ours, AerEstimatorV2(options=aer_options).run(pubs).result())
    assert job.metrics()["num_chunks"] == (1 if chunk_size == 256 else 4)


@pytest.mark.parametrize("chunk_size", [256, 4], ids=["one-chunk", "split"])
def test_sampler_metadata_equals_aers_exactly(session, chunk_size):
    pubs = _sampler_pubs()
    options = {"simulator": {"seed_simulator": SEED}, "raysession": {"chunk_size": chunk_size}}
    job = SamplerV2(mode=session, options=options).run(pubs)
    ours = job.result(timeout=120)
    _assert_same_metadata(ours, AerSamplerV2(seed=SEED).run(pubs).result())
    assert job.metrics()["num_chunks"] == (1 if chunk_size == 256 else 4)


def test_split_job_reports_the_simulator_seconds_of_all_its_chunks(session):
    pubs = [_sampler_pubs()[1]]
    job = SamplerV2(
        mode=session,
        options={"simulator": {"seed_simulator": SEED}, "raysession": {"chunk_size": 3}},
    ).run(pubs)
    simulator = job.result(timeout=120)[0].metadata["simulator_metadata"]
    timings = [key for key in simulator if key.startswith(TIMING_PREFIX)]
    assert timings and all(simulator[key] > 0 for key in timings)


# ------------------------------------------------------------------ raysession's details: metrics


def test_metrics_have_the_seed_chunks_chunk_seeds_and_workers(session):
    pubs = [_sampler_pubs()[1]]
    job = SamplerV2(
        mode=session,
        options={"simulator": {"seed_simulator": SEED}, "raysession": {"chunk_size": 4}},
    ).run(pubs)
    job.result(timeout=120)
    metrics = job.metrics()
    live = {w.worker_id for w in pool_status().workers}
    assert metrics["seed"] == SEED and metrics["num_chunks"] == 3
    assert metrics["chunk_seeds"] == [chunk_seed(SEED, i, 3) for i in range(3)]
    assert [c["index"] for c in metrics["chunks"]] == [0, 1, 2]
    assert [c["seed"] for c in metrics["chunks"]] == metrics["chunk_seeds"]
    assert all(c["worker"] in live and c["execution_s"] > 0 for c in metrics["chunks"])
    assert sorted(metrics["workers"]) == sorted(c["worker"] for c in metrics["chunks"])


def test_an_unseeded_jobs_drawn_seed_is_in_its_metrics_and_reproduces_it(session):
    job = SamplerV2(mode=session).run([bell()])
    counts = job.result(timeout=120)[0].data.meas.get_counts()
    metrics = job.metrics()
    assert isinstance(metrics["seed"], int) and metrics["chunk_seeds"] == [metrics["seed"]]
    again = SamplerV2(mode=session, options={"simulator": {"seed_simulator": metrics["seed"]}}).run(
        [bell()]
    )
    assert again.result(timeout=120)[0].data.meas.get_counts() == counts


# ------------------------------------------------------------------ usage, backend


def test_usage_is_the_jobs_execution_seconds(session):
    job = EstimatorV2(mode=session).run([(bell(False), "ZZ")])
    job.result(timeout=120)
    usage = job.usage()
    assert isinstance(usage, float) and usage > 0
    assert usage == job.metrics()["usage"]["quantum_seconds"] == job.metrics()["usage"]["seconds"]


def test_backend_is_the_raysession_backend_the_job_ran_on(session, backend):
    job = EstimatorV2(mode=session).run([(bell(False), "ZZ")])
    ran_on = job.backend()
    assert isinstance(ran_on, AerBackend)
    assert ran_on.backend_id == backend.backend_id and ran_on.name == backend.name
    other = AerBackend(name="job-mode-backend", max_workers=1)
    try:
        in_job_mode = SamplerV2(mode=other).run([bell()])
        assert in_job_mode.backend().backend_id == other.backend_id
        in_job_mode.result(timeout=120)
    finally:
        other.close()
    job.result(timeout=120)


# ------------------------------------------------------------------ tags


def _tagged(mode, tags):
    pub = SamplerPub.coerce(bell(), 50)
    return submit_job(mode, "sampler", [pub], SamplerOptions(), tags=tags)


def test_tags_are_kept_updated_and_seen_by_other_handles(session, service):
    job = _tagged(session, ["sweep", "run-1", "sweep"])
    assert job.tags == ["sweep", "run-1"]
    assert service.job(job.job_id()).tags == ["sweep", "run-1"]
    assert job.update_tags(["run-2"]) == ["run-2"]
    assert job.tags == ["run-2"]
    assert service.job(job.job_id()).tags == ["run-2"]
    job.result(timeout=120)


def test_tags_must_be_a_list_of_strings(session):
    with pytest.raises(TypeError, match="list of strings"):
        _tagged(session, "sweep")
    with pytest.raises(TypeError, match="list of strings"):
        _tagged(session, ["ok", 3])
    job = _tagged(session, [])
    assert job.tags == []
    with pytest.raises(TypeError, match="list of strings"):
        job.update_tags("run-2")
    with pytest.raises(TypeError, match="list of strings"):
        job.update_tags([None])
    job.result(timeout=120)


def test_service_jobs_filters_by_every_tag_given(session, service):
    both = _tagged(session, ["issue-9", "both"])
    one = _tagged(session, ["issue-9"])
    untagged = _tagged(session, [])
    for job in (both, one, untagged):
        job.result(timeout=120)

    def ids(**filters):
        found = service.jobs(session_id=session.session_id, limit=None, **filters)
        return [job.job_id() for job in found]

    assert ids(job_tags=["issue-9"]) == [one.job_id(), both.job_id()]
    assert ids(job_tags=["issue-9", "both"]) == [both.job_id()]
    assert ids(job_tags=["nowhere"]) == []
    one.update_tags(["both"])
    assert ids(job_tags=["both"]) == [one.job_id(), both.job_id()]
    with pytest.raises(TypeError, match="list of strings"):
        service.jobs(job_tags="both")


def test_update_tags_of_a_job_whose_session_ended_says_so(backend):
    with Session(backend=backend) as short:
        job = _tagged(short, ["a"])
        job.result(timeout=120)
        short.cancel()
    wait_for(lambda: short.session_id not in [s.id for s in list_sessions()])
    with pytest.raises(SessionNotFoundError, match="has ended"):
        job.update_tags(["b"])


# ------------------------------------------------------------------ service.jobs filters


def test_service_jobs_filters_session_backend_program_limit_and_skip(session, service):
    other_backend = AerBackend(name="job-api-other", max_workers=1)
    with Session(backend=other_backend) as other:
        estimates = [EstimatorV2(mode=session).run([(bell(False), "ZZ")]) for _ in range(2)]
        samples = [SamplerV2(mode=session).run([bell()]) for _ in range(2)]
        elsewhere = SamplerV2(mode=other).run([bell()])
        for job in [*estimates, *samples, elsewhere]:
            job.result(timeout=120)
        newest_first = [j.job_id() for j in reversed([*estimates, *samples])]

        def ids(**filters):
            return [job.job_id() for job in service.jobs(**filters)]

        mine = ids(session_id=session.session_id, limit=None)
        assert mine[:4] == newest_first
        assert ids(session_id=session.session_id, limit=2) == newest_first[:2]
        assert ids(session_id=session.session_id, limit=2, skip=1) == newest_first[1:3]
        assert (
            ids(session_id=session.session_id, limit=None, descending=False)[-4:]
            == (newest_first[::-1])
        )
        assert ids(backend_name="job-api-other", limit=None) == [elsewhere.job_id()]
        assert ids(session_id=other.session_id) == [elsewhere.job_id()]
        estimator_ids = ids(session_id=session.session_id, program_id="estimator", limit=None)
        assert estimator_ids[:2] == newest_first[2:] and newest_first[0] not in estimator_ids
        assert service.jobs(session_id=session.session_id, limit=1)[0].session_id == (
            session.session_id
        )


# ------------------------------------------------------------------ waiting for the end


def test_wait_for_final_state_times_out_then_returns_when_final(backend, service):
    gate, name = new_gate()
    with Session(backend=backend) as session:
        earlier = EstimatorV2(mode=session).run([(bell(False), "ZZ")])
        earlier.result(timeout=120)
        held = EstimatorV2(mode=session).run([(gated(bell(False), name), "ZZ")])
        wait_for(lambda: entered(gate) == 1, timeout=120)
        with pytest.raises(JobTimeoutError, match="final state"):
            held.wait_for_final_state(timeout=0.2)
        assert held.status() == "RUNNING" and held.usage() == 0.0

        def ids(**filters):
            found = service.jobs(session_id=session.session_id, limit=None, **filters)
            return [job.job_id() for job in found]

        queued = EstimatorV2(mode=session).run([(bell(False), "ZZ")])
        assert ids(pending=True) == [queued.job_id(), held.job_id()]
        assert ids(pending=False) == [earlier.job_id()]
        assert queued.cancel()
        queued.wait_for_final_state(timeout=60)
        assert queued.status() == "CANCELLED"

        gate.allow.remote()
        assert held.wait_for_final_state(timeout=120) is None
        assert held.status() == "DONE" and held.usage() > 0
        assert ids(pending=True) == []
        assert float(held.result(timeout=60)[0].data.evs) == pytest.approx(1.0, abs=0.1)
