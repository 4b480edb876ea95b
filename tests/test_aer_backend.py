"""AerBackend: a pool of Aer worker actors; options, placement, failure and cleanup."""

from __future__ import annotations

import numpy as np
import pytest
import ray
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from raysession import AerBackend, EstimatorV2, SamplerV2, Session
from tests.conftest import live_raysession_actors, wait_for
from tests.helpers import ONE_CHUNK, ansatz, bell, observable, slow_pub, values

# No module-wide pool here: each test owns its pool, so pools never wait for each other's CPUs.


def test_default_worker_count_is_the_cpus_ray_sees():
    pool = AerBackend()
    try:
        assert pool.num_workers == int(ray.cluster_resources()["CPU"]) == 2
    finally:
        pool.close()


def test_bad_aer_options_and_counts_raise_at_construction():
    with pytest.raises(ValueError, match="Invalid simulation method"):
        AerBackend(num_workers=1, method="warp_drive")
    with pytest.raises(ValueError, match="Invalid option"):
        AerBackend(num_workers=1, not_an_option=3)
    with pytest.raises(ValueError, match="num_workers must be positive"):
        AerBackend(num_workers=0)
    with pytest.raises(ValueError, match="device='GPU' is not available"):
        AerBackend(num_workers=1, device="GPU")


def test_aer_options_reach_every_worker():
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.2, 2), ["cx"])
    with AerBackend(num_workers=2, method="density_matrix", noise_model=noise) as noisy:
        with Session(backend=noisy):
            result = SamplerV2(options={"seed_simulator": 1}).run([bell()], shots=2000).result()
            counts = result[0].data.meas.get_counts()
            assert set(counts) > {"00", "11"}  # noise puts shots on 01/10
            assert noisy.aer_options["method"] == "density_matrix"


def test_pubs_of_one_job_spread_over_the_pool():
    circuit, obs = ansatz(4), observable(4)
    pubs = [(circuit, obs, values(circuit, 300, seed=i)) for i in range(4)]
    with AerBackend(num_workers=2) as backend, Session(backend=backend):
        job = EstimatorV2(options={"default_precision": 0, "chunk_size": 300}).run(pubs)
        result = job.result()
        workers = {w for pub in result for w in pub.metadata["raysession"]["workers"]}
        assert workers == set(backend.worker_ids())
    expected = AerEstimatorV2().run(pubs).result()
    for got, want in zip(result, expected, strict=True):
        np.testing.assert_allclose(got.data.evs, want.data.evs, atol=1e-12)


def test_seeded_job_gives_the_same_numbers_on_any_pool_size():
    circuit = ansatz(3)
    circuit.measure_all()
    pub = (circuit, values(circuit, 40), 50)
    options = {"seed_simulator": 9, "chunk_size": 8}
    arrays = []
    # Pools of 1, 2 and 8 workers (8 x 0.25 CPU fits the 2-CPU test cluster).
    for num_workers, cpus in ((1, 1), (2, 1), (8, 0.25)):
        with AerBackend(num_workers=num_workers, num_cpus_per_worker=cpus) as pool:
            with Session(backend=pool):
                result = SamplerV2(options=options).run([pub]).result()[0]
        assert len(result.metadata["raysession"]["chunks"]) == 5
        arrays.append(result.data.meas.array)
    for other in arrays[1:]:
        np.testing.assert_array_equal(arrays[0], other)


def test_worker_killed_mid_job_is_restarted_and_the_chunk_retried():
    with AerBackend(num_workers=1) as pool, Session(backend=pool) as session:
        estimator = EstimatorV2(options=ONE_CHUNK)
        job = estimator.run([slow_pub(300)])
        wait_for(lambda: job.running())
        ray.kill(ray.get_actor(pool.worker_ids()[0], namespace="raysession"), no_restart=False)
        assert job.result(timeout=180)[0].data.evs.shape == (300,)
        assert session.status() == "In progress, accepting new jobs"


def test_closed_pool_fails_jobs_with_backend_unavailable():
    from raysession import BackendUnavailableError

    pool = AerBackend(num_workers=1)
    pool.wait_ready(timeout=120)
    with Session(backend=pool) as session:
        pool.close()
        job = EstimatorV2(options={"default_precision": 0}).run([(bell(False), "ZZ")])
        with pytest.raises(BackendUnavailableError, match="lost its workers"):
            job.result(timeout=60)
        assert session.details().state.is_accepting


def test_nothing_is_left_behind_after_session_and_backend_close():
    before = set(live_raysession_actors())
    pool = AerBackend(num_workers=2)
    with Session(backend=pool) as session:
        SamplerV2().run([bell()], shots=10).result()
    pool.close()
    wait_for(lambda: set(live_raysession_actors()) <= before)
    assert f"session-{session.session_id}" not in live_raysession_actors()


def test_circuit_goes_to_a_worker_once_and_a_restarted_worker_refills_its_cache():
    circuit, obs = ansatz(4), observable(4)
    with AerBackend(num_workers=1) as pool, Session(backend=pool):
        estimator = EstimatorV2(options={"default_precision": 0})
        worker = ray.get_actor(pool.worker_ids()[0], namespace="raysession")
        for seed in range(5):
            estimator.run([(circuit, obs, values(circuit, 3, seed=seed))]).result()
        info = ray.get(worker.cache_info.remote())
        assert (info["circuits"], info["misses"], info["refills"]) == (1, 1, 0)
        ray.kill(worker, no_restart=False)
        result = estimator.run([(circuit, obs, values(circuit, 3, seed=9))]).result(timeout=120)
        expected = AerEstimatorV2().run([(circuit, obs, values(circuit, 3, seed=9))]).result()
        np.testing.assert_allclose(result[0].data.evs, expected[0].data.evs, atol=1e-12)
        info = ray.get(worker.cache_info.remote())
        assert (info["misses"], info["refills"]) == (1, 1)


def test_circuit_cache_off_unpickles_every_job_and_gives_the_same_numbers():
    circuit, obs = ansatz(3), observable(3)
    vals = values(circuit, 4)
    with AerBackend(num_workers=1) as pool, Session(backend=pool):
        worker = ray.get_actor(pool.worker_ids()[0], namespace="raysession")
        off = EstimatorV2(options={"default_precision": 0, "circuit_cache": False})
        on = EstimatorV2(options={"default_precision": 0})
        a = off.run([(circuit, obs, vals)]).result()[0].data.evs
        b = on.run([(circuit, obs, vals)]).result()[0].data.evs
        np.testing.assert_array_equal(a, b)
        assert ray.get(worker.cache_info.remote())["circuits"] == 1
