"""The cluster's one Aer worker pool (issue 7): descriptions, demand, fairness, healing, cleanup.

Every test runs on one real ``ray.init(num_cpus=2)`` with short pool timers, set in the
environment before Ray starts so that every Ray process (and so the pool, whoever
creates it) reads them. Slow work is held with a gate the test opens (``tests.helpers``).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from raysession import (
    AerBackend,
    BackendUnavailableError,
    Batch,
    EstimatorV2,
    JobFailedError,
    SamplerV2,
    Session,
    SessionClosedError,
    list_sessions,
    pool_status,
    shutdown_pool,
)
from tests.conftest import live_raysession_actors, wait_for
from tests.helpers import (
    ansatz,
    bell,
    crashing,
    entered,
    failing,
    gated,
    new_gate,
    observable,
    run_driver,
    values,
)

REPO = Path(__file__).resolve().parents[1]
IDLE_S = 4.0
PLACEMENT_S = 3.0
JOB_MODE_IDLE_S = 2.0
EXACT = {"default_precision": 0.0}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster() -> Iterator[None]:
    """Overrides conftest's Ray: the same 2 CPUs, with short pool timers in the environment."""
    env = {
        "RAYSESSION_WORKER_IDLE_S": str(IDLE_S),
        "RAYSESSION_PLACEMENT_TIMEOUT_S": str(PLACEMENT_S),
        "RAYSESSION_JOB_MODE_IDLE_S": str(JOB_MODE_IDLE_S),
    }
    if ray.is_initialized():
        ray.shutdown()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
        try:
            yield
        finally:
            ray.shutdown()


def fresh_pool() -> None:
    """Stop the pool (and its workers) so a test starts from an empty cluster."""
    shutdown_pool()
    wait_for(lambda: not any(n == "pool" or n.startswith("aer-") for n in live_raysession_actors()))


def worker(worker_id: str):
    return ray.get_actor(worker_id, namespace="raysession")


def workers_of(job) -> set[str]:
    """The workers that ran a job's chunks (finished jobs)."""
    return set(job.metrics()["workers"])


def bell_zz(estimator: EstimatorV2) -> float:
    return float(estimator.run([(bell(False), "ZZ")]).result(timeout=120)[0].data.evs)


# ------------------------------------------------------------------ backends are descriptions


def test_backends_are_cheap_descriptions_that_start_nothing_and_pickle():
    fresh_pool()
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    backends = [AerBackend(method="stabilizer", max_workers=3) for _ in range(20)]
    backends += [AerBackend(noise_model=noise, num_cpus_per_worker=0.5) for _ in range(20)]
    assert live_raysession_actors() == []
    assert pool_status().workers == []
    copy = pickle.loads(pickle.dumps(backends[-1]))
    assert copy.backend_id == backends[-1].backend_id
    assert copy.shape.num_cpus == 0.5 and copy.max_workers is None
    assert copy.aer_options["noise_model"].to_dict() == noise.to_dict()
    assert pickle.loads(pickle.dumps(backends[0])).max_workers == 3


def test_bad_aer_options_and_counts_raise_at_construction():
    with pytest.raises(ValueError, match="Invalid simulation method"):
        AerBackend(method="warp_drive")
    with pytest.raises(ValueError, match="Invalid option"):
        AerBackend(not_an_option=3)
    with pytest.raises(ValueError, match="must be positive"):
        AerBackend(num_workers=0)
    with pytest.raises(ValueError, match="must be positive"):
        AerBackend(max_workers=-1)
    with pytest.raises(ValueError, match="num_cpus_per_worker must be positive"):
        AerBackend(num_cpus_per_worker=0)
    with pytest.raises(ValueError, match="give the cap once"):
        AerBackend(num_workers=2, max_workers=3)
    with pytest.raises(ValueError, match="device='GPU' is not available"):
        AerBackend(device="GPU")


def test_backends_with_other_aer_options_share_one_worker_of_their_shape():
    fresh_pool()
    plain, clifford = AerBackend(max_workers=1), AerBackend(method="stabilizer", max_workers=1)
    with Session(plain) as first, Session(clifford) as second:
        a = EstimatorV2(mode=first, options=EXACT).run([(bell(False), "ZZ")])
        a.result(timeout=120)  # before b is submitted: b must find a's worker idle
        b = SamplerV2(mode=second, options={"simulator": {"seed_simulator": 3}}).run([bell()])
        assert set(b.result(timeout=120)[0].data.meas.get_counts()) == {"00", "11"}
        (used,) = workers_of(a)
        assert workers_of(b) == {used}
    assert [w.worker_id for w in pool_status().workers] == [used]
    info = ray.get(worker(used).cache_info.remote())
    assert info["simulators"] == 2 and info["simulator_builds"] == 2


def test_a_noise_model_travels_to_a_worker_once_and_is_applied():
    fresh_pool()
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.2, 2), ["cx"])
    noisy = AerBackend(method="density_matrix", noise_model=noise, max_workers=1)
    with Session(noisy):
        sampler = SamplerV2(options={"simulator": {"seed_simulator": 1}})
        jobs = [sampler.run([bell()], shots=2000) for _ in range(3)]
        results = [job.result(timeout=120) for job in jobs]
        (used,) = {w for job in jobs for w in workers_of(job)}
    assert all(set(r[0].data.meas.get_counts()) > {"00", "11"} for r in results)
    assert ray.get(worker(used).cache_info.remote())["simulator_builds"] == 1


def test_aer_options_reach_every_worker_that_runs_a_chunk_of_a_job():
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.2, 2), ["cx"])
    theta = Parameter("theta")
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.rz(theta, 0)
    circuit.measure_all()
    gate, name = new_gate()
    noisy = AerBackend(method="density_matrix", noise_model=noise)
    with Session(noisy):
        # One row of the sweep per chunk, and every chunk held at the gate until both run.
        options = {
            "simulator": {"seed_simulator": 5},
            "raysession": {"chunk_size": 1, "circuit_cache": False},
        }
        job = SamplerV2(options=options).run([(gated(circuit, name), [[0.1], [0.2]], 2000)])
        wait_for(lambda: entered(gate) == 2)
        gate.allow.remote(2)
        result = job.result(timeout=120)[0]
    assert job.metrics()["num_chunks"] == 2
    assert len(set(job.metrics()["workers"])) == 2
    # Without noise, a Bell pair measures 00 or 11 only: each chunk's rows show the noise.
    for row in range(2):
        counts = result.data.meas.get_counts(row)
        assert sum(counts.values()) == 2000
        assert set(counts) > {"00", "11"}, (row, counts)


def test_num_workers_caps_the_workers_a_backends_jobs_use():
    circuit, obs = ansatz(3), observable(3)
    pub = (circuit, obs, values(circuit, 40))
    with Session(AerBackend(num_workers=1)):
        job = EstimatorV2(options={**EXACT, "raysession": {"chunk_size": 10}}).run([pub])
        result = job.result(timeout=120)
        assert job.metrics()["num_chunks"] == 4
        assert len(workers_of(job)) == 1
    np.testing.assert_allclose(
        result[0].data.evs, AerEstimatorV2().run([pub]).result()[0].data.evs, atol=1e-12
    )


def test_a_cap_above_the_cluster_runs_on_what_the_cluster_places():
    circuit, obs = ansatz(3), observable(3)
    pub = (circuit, obs, values(circuit, 60))
    with Session(AerBackend(num_workers=1000)):
        job = EstimatorV2(options={**EXACT, "raysession": {"chunk_size": 5}}).run([pub])
        assert job.result(timeout=120)[0].data.evs.shape == (60,)
    assert len(pool_status().workers) <= 2


# ------------------------------------------------------------------ the user's own Ray work


def test_idle_workers_hold_no_cpu_that_a_users_task_waits_for():
    backend = AerBackend()
    assert backend.warm_up(timeout=120) == 2
    assert {w.state for w in pool_status().workers} == {"idle"}
    assert ray.available_resources()["CPU"] == 2

    @ray.remote
    def plain_task() -> int:
        return 7

    assert ray.get(plain_task.remote(), timeout=120) == 7


@ray.remote
def sweep(estimator, circuit, obs, vals):
    """The README's pattern: a task with Ray's default resources submits into a session."""
    return estimator.run([(circuit, obs, vals)]).result()[0].data.evs


def test_readme_sweep_pattern_with_default_resource_tasks_completes_on_two_cpus():
    circuit, obs = ansatz(4), observable(4)
    vals = values(circuit, 64)
    with Session(backend=AerBackend()) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        parts = np.array_split(vals, 8)
        evs = np.concatenate(
            ray.get([sweep.remote(estimator, circuit, obs, p) for p in parts], timeout=300)
        )
    expected = AerEstimatorV2().run([(circuit, obs, vals)]).result()[0].data.evs
    np.testing.assert_allclose(evs, expected, atol=1e-12)


def test_idle_workers_are_released_and_nothing_stays_once_no_session_is_open():
    with Session(AerBackend()) as session:
        assert bell_zz(EstimatorV2(mode=session, options=EXACT)) == pytest.approx(1.0)
        assert pool_status().workers
    # IDLE_S after the last job the workers go; with no session left the pool goes too.
    wait_for(lambda: live_raysession_actors() == [], timeout=IDLE_S * 10)


# ------------------------------------------------------------------ fair dispatch


def test_a_small_job_of_another_session_waits_about_one_chunk_of_a_sweep():
    gate, name = new_gate()
    circuit, obs = ansatz(3), observable(3)
    sweep_pub = (gated(circuit, name), obs, values(circuit, 100))
    backend = AerBackend()
    backend.warm_up(timeout=120)
    with Session(backend) as a, Session(backend) as b:
        # No cache: every chunk of A unpickles its circuit, so every chunk waits at the gate.
        big = EstimatorV2(
            mode=a, options={**EXACT, "raysession": {"chunk_size": 10, "circuit_cache": False}}
        )
        job_a = big.run([sweep_pub])
        wait_for(lambda: ray.get(gate.counts.remote())[0] == 2)  # both workers hold A's chunks
        job_b = EstimatorV2(mode=b, options=EXACT).run([(bell(False), "ZZ")])
        wait_for(lambda: pool_status().waiting.get(b.session_id) == 1)
        gate.allow.remote(2)  # A's two running chunks finish; B is served next, then A
        assert float(job_b.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
        entered, passed = ray.get(gate.counts.remote())
        assert passed == 2 and entered <= 3
        assert job_a.status() == "RUNNING"
        gate.allow.remote(100)
        result = job_a.result(timeout=120)
    expected = AerEstimatorV2().run([(circuit, obs, sweep_pub[2])]).result()[0].data.evs
    np.testing.assert_allclose(result[0].data.evs, expected, atol=1e-12)


def _gated_bell_jobs(estimator: EstimatorV2, gate_name: str, count: int) -> list:
    """``count`` Bell jobs, each of which waits at the gate (no circuit cache: each unpickles)."""
    return [estimator.run([(gated(bell(False), gate_name), "ZZ")]) for _ in range(count)]


def _pass_one_at_a_time(gate, jobs: list, until) -> int:
    """Let the gated ``jobs`` through one by one, a tenth of a second apart, until
    ``until()`` or all passed; returns how many passed."""
    passed = 0
    while passed < len(jobs) and not until():
        wait_for(lambda done=passed: ray.get(gate.counts.remote())[0] > done)
        time.sleep(0.1)  # each job holds its worker a tenth of a second
        gate.allow.remote(1)
        passed += 1
    return passed


def test_a_batch_keeps_its_worker_for_its_queued_jobs_while_no_other_session_waits():
    fresh_pool()
    gate, name = new_gate()
    backend = AerBackend(num_workers=1)
    options = {**EXACT, "raysession": {"circuit_cache": False}}
    with Batch(backend) as batch:
        jobs = _gated_bell_jobs(EstimatorV2(mode=batch, options=options), name, 10)
        # Ten jobs of a tenth of a second each, one after another on the one worker: a
        # second of leasing, four times the quarter second after which a held worker used
        # to go back to the pool whether or not anybody waited for it.
        _pass_one_at_a_time(gate, jobs, lambda: False)
        assert [float(job.result()[0].data.evs) for job in jobs] == [1.0] * 10
        assert {w for job in jobs for w in workers_of(job)} == {jobs[0].metrics()["workers"][0]}
        assert pool_status().grants.get(batch.session_id, 0) <= 2


def test_a_batch_gives_its_worker_to_another_session_that_waits_within_a_few_jobs():
    fresh_pool()
    gate, name = new_gate()
    backend = AerBackend(num_workers=1)
    options = {**EXACT, "raysession": {"circuit_cache": False}}
    with Batch(backend) as batch, Session(backend) as other:
        jobs = _gated_bell_jobs(EstimatorV2(mode=batch, options=options), name, 30)
        wait_for(lambda: ray.get(gate.counts.remote())[0] == 1)
        waiting = EstimatorV2(mode=other, options=EXACT).run([(bell(False), "ZZ")])
        wait_for(lambda: pool_status().waiting.get(other.session_id) == 1)
        passed = _pass_one_at_a_time(gate, jobs, waiting.in_final_state)
        assert float(waiting.result()[0].data.evs) == pytest.approx(1.0)
        # It waited for a few of the batch's jobs (about a quarter second of them), not
        # for the batch's queue.
        assert passed <= 10
        assert sum(job.in_final_state() for job in jobs) <= 10
        gate.allow.remote(100)
        assert [float(job.result(timeout=120)[0].data.evs) for job in jobs] == [1.0] * 30


# ------------------------------------------------------------------ nothing hangs


@pytest.mark.parametrize(
    ("shape", "named"),
    [
        ({"num_cpus_per_worker": 64}, "'CPU': 64"),
        ({"num_gpus_per_worker": 1, "device": "GPU"}, "'GPU': 1"),
    ],
)
def test_a_worker_no_node_can_place_fails_the_job_in_the_placement_timeout(shape, named):
    with Session(AerBackend(**shape)) as session:
        job = EstimatorV2(mode=session, options=EXACT).run([(bell(False), "ZZ")])
        with pytest.raises(BackendUnavailableError, match="No node could place") as caught:
            job.result(timeout=PLACEMENT_S * 20)
        assert named in str(caught.value) and "RAYSESSION_PLACEMENT_TIMEOUT_S" in str(caught.value)
        assert job.status() == "ERROR"
        # The session goes on with a backend the cluster can place.
    with Session(AerBackend()) as other:
        assert bell_zz(EstimatorV2(mode=other, options=EXACT)) == pytest.approx(1.0)


# ------------------------------------------------------------------ self-healing


@pytest.mark.parametrize("no_restart", [True, False])
def test_a_worker_killed_mid_chunk_is_replaced_and_the_chunk_runs_again(no_restart):
    gate, name = new_gate()
    circuit, obs = ansatz(3), observable(3)
    vals = values(circuit, 4)
    replaced = pool_status().replaced
    with Session(AerBackend(max_workers=1)) as session:
        estimator = EstimatorV2(
            mode=session, options={**EXACT, "raysession": {"circuit_cache": False}}
        )
        job = estimator.run([(gated(circuit, name), obs, vals)])
        wait_for(lambda: entered(gate) == 1)
        (busy,) = [w.worker_id for w in pool_status().workers if w.state == "busy"]
        # The job's one chunk is held at the gate: killing its worker loses it unfinished.
        assert ray.get(gate.counts.remote()) == (1, 0)
        ray.kill(worker(busy), no_restart=no_restart)
        # The chunk reaches the gate a second time: it runs again, on another worker.
        wait_for(lambda: entered(gate) == 2)
        assert job.status() == "RUNNING"
        # Two permits: the killed worker's call is still parked at the gate and may take one.
        gate.allow.remote(2)
        result = job.result(timeout=120)
        assert job.metrics()["retries"] == 1
        assert busy not in workers_of(job)
        assert entered(gate) == 2  # once lost, once run again: no third run
        assert session.status() == "In progress, accepting new jobs"
    assert pool_status().replaced >= replaced + 1
    expected = AerEstimatorV2().run([(circuit, obs, vals)]).result()[0].data.evs
    np.testing.assert_allclose(result[0].data.evs, expected, atol=1e-12)


def test_a_killed_idle_worker_is_replaced_for_the_next_job():
    backend = AerBackend()
    backend.warm_up(timeout=120)
    before = {w.worker_id for w in pool_status().workers}
    for worker_id in before:
        ray.kill(worker(worker_id), no_restart=True)
    wait_for(lambda: not before & {w.worker_id for w in pool_status().workers})
    with Session(backend) as session:
        assert bell_zz(EstimatorV2(mode=session, options=EXACT)) == pytest.approx(1.0)


def test_a_chunk_that_keeps_crashing_its_worker_fails_its_job_and_the_session_goes_on():
    with Session(AerBackend()) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        job = estimator.run([(crashing(bell(False)), "ZZ")])
        with pytest.raises(JobFailedError, match="crashed its worker 4 times"):
            job.result(timeout=300)
        assert job.status() == "ERROR" and job.metrics()["retries"] == 3
        assert bell_zz(estimator) == pytest.approx(1.0)
        assert session.status() == "In progress, accepting new jobs"


def test_a_circuit_runs_again_after_the_worker_that_cached_it_is_killed():
    circuit, obs = ansatz(4), observable(4)
    with Session(AerBackend(max_workers=1)) as session:
        estimator = EstimatorV2(mode=session, options=EXACT)
        first = estimator.run([(circuit, obs, values(circuit, 3, seed=1))])
        first.result(timeout=120)
        (used,) = workers_of(first)
        assert ray.get(worker(used).cache_info.remote())["circuits"] >= 1
        ray.kill(worker(used), no_restart=True)
        for seed in (2, 3):
            vals = values(circuit, 3, seed=seed)
            got = estimator.run([(circuit, obs, vals)]).result(timeout=120)[0].data.evs
            want = AerEstimatorV2().run([(circuit, obs, vals)]).result()[0].data.evs
            np.testing.assert_allclose(got, want, atol=1e-12)


def test_a_noise_model_is_sent_again_to_the_worker_that_replaces_a_killed_one():
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.2, 2), ["cx"])
    with Session(AerBackend(method="density_matrix", noise_model=noise, max_workers=1)):
        sampler = SamplerV2(options={"simulator": {"seed_simulator": 4}})
        first_job = sampler.run([bell()], shots=2000)
        first = first_job.result(timeout=120)
        (used,) = workers_of(first_job)
        ray.kill(worker(used), no_restart=True)
        again_job = sampler.run([bell()], shots=2000)
        again = again_job.result(timeout=120)
        assert workers_of(again_job) != {used}
    assert set(again[0].data.meas.get_counts()) > {"00", "11"}  # the noise is applied
    np.testing.assert_array_equal(again[0].data.meas.array, first[0].data.meas.array)


def test_circuit_cache_off_unpickles_every_job_and_gives_the_same_numbers():
    fresh_pool()  # with a cap of one, then, every job runs on the same single worker
    # The gate counts unpickles: a worker that unpickles the circuit passes through it.
    gate, name = new_gate()
    gate.allow.remote(100)
    circuit, obs = ansatz(3), observable(3)
    vals = values(circuit, 4)
    pub = (gated(circuit, name), obs, vals)
    with Session(AerBackend(max_workers=1)) as session:
        off = EstimatorV2(mode=session, options={**EXACT, "raysession": {"circuit_cache": False}})
        on = EstimatorV2(mode=session, options=EXACT)
        uncached = []
        for runs in (1, 2, 3):
            uncached.append(off.run([pub]))
            uncached[-1].result(timeout=120)
            assert entered(gate) == runs  # every job unpickled the circuit again
        (used,) = set.union(*(workers_of(r) for r in uncached))
        info = ray.get(worker(used).cache_info.remote())
        assert (info["circuits"], info["misses"]) == (0, 0)  # and kept none of them
        cached = [on.run([pub]) for _ in range(3)]
        for job in cached:
            job.result(timeout=120)
        assert set.union(*(workers_of(r) for r in cached)) == {used}
        # The cached jobs unpickled the circuit once between them, and kept it.
        assert entered(gate) == 4
        info = ray.get(worker(used).cache_info.remote())
        assert (info["circuits"], info["misses"]) == (1, 1)
    expected = AerEstimatorV2().run([(circuit, obs, vals)]).result()[0].data.evs
    first = uncached[0].result()[0].data.evs
    for job in uncached + cached:
        np.testing.assert_array_equal(job.result()[0].data.evs, first)
    np.testing.assert_allclose(first, expected, atol=1e-12)


def test_seeded_job_gives_the_same_numbers_on_any_number_of_workers():
    circuit = ansatz(3)
    circuit.measure_all()
    pub = (circuit, values(circuit, 40), 50)
    options = {"simulator": {"seed_simulator": 9}, "raysession": {"chunk_size": 8}}
    arrays = []
    for backend in (
        AerBackend(max_workers=1),
        AerBackend(max_workers=2),
        AerBackend(num_cpus_per_worker=0.25),  # up to 8 workers on 2 CPUs
    ):
        with Session(backend=backend):
            job = SamplerV2(options=options).run([pub])
            result = job.result(timeout=180)[0]
            assert job.metrics()["num_chunks"] == 5
        arrays.append(result.data.meas.array)
    for other in arrays[1:]:
        np.testing.assert_array_equal(arrays[0], other)


# ------------------------------------------------------------------ drivers come and go


def test_a_session_outlives_its_driver_and_runs_the_jobs_a_second_driver_submits():
    opened = run_driver(
        """
        from raysession import AerBackend, EstimatorV2, Session
        from tests.helpers import bell
        session = Session(AerBackend(), idle_timeout=300)
        job = EstimatorV2(mode=session, options={"default_precision": 0}).run([(bell(False), "ZZ")])
        assert float(job.result(timeout=120)[0].data.evs) == 1.0
        print("SESSION", session.session_id)
        """
    )
    assert opened.returncode == 0, opened.stderr
    session_id = opened.stdout.split("SESSION")[-1].strip()
    session = Session.from_id(session_id)
    try:
        assert bell_zz(EstimatorV2(mode=session, options=EXACT)) == pytest.approx(1.0)
        assert len(session.job_ids()) == 2
    finally:
        session.close()


def test_a_rejected_submit_raises_in_the_caller_and_prints_nothing_else():
    done = run_driver(
        """
        import gc, time
        from raysession import AerBackend, EstimatorV2, Session, SessionClosedError
        from tests.helpers import bell
        session = Session(AerBackend())
        estimator = EstimatorV2(mode=session)
        session.close()
        try:
            estimator.run([(bell(False), "ZZ")])
        except SessionClosedError as exc:
            print("REJECTED", exc)
        gc.collect()
        time.sleep(2)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "REJECTED" in done.stdout and "is closed" in done.stdout
    assert "Unhandled error" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_job_mode_leaves_nothing_behind_after_close_after_idle_and_after_exit():
    def hidden_batches() -> set[str]:
        return {n for n in live_raysession_actors() if n.startswith("session-")}

    before = hidden_batches()
    backend = AerBackend()
    assert bell_zz(EstimatorV2(mode=backend, options=EXACT)) == pytest.approx(1.0)
    (batch,) = hidden_batches() - before
    backend.close()
    wait_for(lambda: batch not in hidden_batches(), timeout=30)

    # Idle: the hidden batch closes itself after RAYSESSION_JOB_MODE_IDLE_S.
    other = AerBackend()
    assert bell_zz(EstimatorV2(mode=other, options=EXACT)) == pytest.approx(1.0)
    (batch,) = hidden_batches() - before
    wait_for(lambda: batch not in hidden_batches(), timeout=JOB_MODE_IDLE_S * 15)
    # ... and the next job in job mode opens a new one.
    assert bell_zz(EstimatorV2(mode=other, options=EXACT)) == pytest.approx(1.0)
    other.close()

    # A driver that exits cleanly closes its hidden batches at exit.
    done = run_driver(
        """
        from raysession import AerBackend, EstimatorV2
        from tests.helpers import bell
        job = EstimatorV2(mode=AerBackend(), options={"default_precision": 0}).run(
            [(bell(False), "ZZ")]
        )
        print("EV", float(job.result(timeout=120)[0].data.evs))
        """
    )
    assert done.returncode == 0 and "EV 1.0" in done.stdout, done.stderr
    wait_for(lambda: hidden_batches() <= before, timeout=30)


def _session_ids() -> set[str]:
    return {details.id for details in list_sessions()}


def test_job_mode_runs_the_next_job_in_a_new_batch_once_the_idle_one_closed_itself():
    gate, name = new_gate()
    circuit = gated(bell(False), name)
    before = _session_ids()
    backend = AerBackend()
    estimator = EstimatorV2(mode=backend, options={**EXACT, "raysession": {"circuit_cache": False}})
    try:
        first = estimator.run([(circuit, "ZZ")])
        wait_for(lambda: entered(gate) == 1)
        (batch,) = _session_ids() - before  # the hidden batch, seen while the job runs
        assert Session.from_id(batch).job_ids() == [first.job_id()]
        gate.allow.remote(1)
        assert float(first.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
        # Idle for RAYSESSION_JOB_MODE_IDLE_S, the batch closes itself and its actor exits.
        wait_for(lambda: batch not in _session_ids(), timeout=JOB_MODE_IDLE_S * 15)

        second = estimator.run([(circuit, "ZZ")])
        wait_for(lambda: entered(gate) == 2)
        (renewed,) = _session_ids() - before
        assert renewed != batch
        assert Session.from_id(renewed).job_ids() == [second.job_id()]
        gate.allow.remote(1)
        assert float(second.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
        assert second.status() == "DONE"
    finally:
        backend.close()


def test_rejected_submit_in_this_process_raises_session_closed():
    session = Session(AerBackend())
    session.close()
    with pytest.raises(SessionClosedError, match="is closed"):
        EstimatorV2(mode=session).run([(bell(False), "ZZ")])


# ------------------------------------------------------------------ found in review


def test_a_capped_backend_starts_no_more_workers_than_its_cap():
    fresh_pool()
    circuit, obs = ansatz(3), observable(3)
    pub = (circuit, obs, values(circuit, 40))
    with Session(AerBackend(max_workers=1)):
        job = EstimatorV2(options={**EXACT, "raysession": {"chunk_size": 5}}).run([pub])
        job.result(timeout=120)
        assert job.metrics()["num_chunks"] == 8
    assert len(pool_status().workers) == 1


def test_idle_workers_of_another_shape_make_room_for_a_wider_worker():
    narrow = AerBackend()
    assert narrow.warm_up(timeout=120) == 2  # both CPUs taken by idle 1-CPU workers
    with Session(AerBackend(num_cpus_per_worker=2)) as session:
        assert bell_zz(EstimatorV2(mode=session, options=EXACT)) == pytest.approx(1.0)
    assert {w.num_cpus for w in pool_status().workers} >= {2.0}


def test_a_failed_chunk_drops_the_chunks_of_its_job_that_wait_for_a_worker():
    gate, name = new_gate()
    broken = failing(bell(False))
    held = gated(bell(False), name)
    options = {**EXACT, "raysession": {"circuit_cache": False, "chunk_size": 1}}
    backend = AerBackend()
    backend.warm_up(timeout=120)
    with Session(backend) as first, Session(backend) as second:
        # Both workers held at the gate by the first session's two chunks.
        blocker = EstimatorV2(mode=first, options=options).run([(held, "ZZ"), (held, "XX")])
        wait_for(lambda: ray.get(gate.counts.remote())[0] == 2)
        # One chunk per PUB, queued in order: the broken one first.
        job = EstimatorV2(mode=second, options=options).run(
            [(broken, "ZZ"), (held, "ZZ"), (held, "XX")]
        )
        wait_for(lambda: pool_status().waiting.get(second.session_id) == 3)
        gate.allow.remote(1)  # one worker comes free: the broken chunk gets it and fails
        with pytest.raises(JobFailedError, match="not_a_gate"):
            job.result(timeout=120)
        wait_for(lambda: not pool_status().waiting.get(second.session_id))
        assert ray.get(gate.counts.remote()) == (2, 1)  # its gated chunks never started
        gate.allow.remote(1)
        assert blocker.result(timeout=120)[0].data.evs == pytest.approx(1.0)
        assert bell_zz(EstimatorV2(mode=second, options=EXACT)) == pytest.approx(1.0)
