"""Issue 9: the primitives take qiskit-ibm-runtime's V2 option tree, on real Ray and Aer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

from raysession import EstimatorV2, SamplerV2, Session
from raysession.errors import RaySessionWarning
from tests.helpers import ansatz, bell, values

ZZ = SparsePauliOp("ZZ")


@pytest.fixture(scope="module")
def session(backend):
    session = Session(backend=backend)
    yield session
    session.close()


def _noise(p: float = 0.2) -> NoiseModel:
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(p, 2), ["cx"])
    return noise


def _counts(job):
    return job.result()[0].data.meas.get_counts()


def test_options_changed_by_attribute_apply_to_the_next_run(session):
    estimator = EstimatorV2(mode=session)
    estimator.options.default_shots = 10_000
    result = estimator.run([(bell(False), ZZ)]).result()
    assert result[0].data.stds == pytest.approx(0.01)
    sampler = SamplerV2(mode=session)
    sampler.options.default_shots = 37
    sampler.options.simulator.seed_simulator = 1
    assert sampler.run([bell()]).result()[0].data.meas.num_shots == 37


def test_update_with_nested_dicts_applies_to_the_next_run(session):
    sampler = SamplerV2(mode=session, options={"default_shots": 20})
    sampler.options.update(default_shots=30, simulator={"seed_simulator": 4})
    first = sampler.run([bell()]).result()[0].data.meas
    assert first.num_shots == 30
    again = SamplerV2(
        mode=session, options={"default_shots": 30, "simulator": {"seed_simulator": 4}}
    )
    assert again.run([bell()]).result()[0].data.meas.get_counts() == first.get_counts()


def test_a_job_keeps_the_options_it_was_run_with(session):
    noise = _noise()
    estimator = EstimatorV2(
        mode=session, options={"default_precision": 0.0, "simulator": {"noise_model": noise}}
    )
    job = estimator.run([(bell(False), ZZ)])
    estimator.options.simulator.noise_model = None
    noise.add_all_qubit_quantum_error(depolarizing_error(1.0, 2), ["cx"])
    estimator.options.default_precision = 0.5
    noisy = job.result()[0].data
    assert noisy.stds == 0.0 and 0.5 < noisy.evs < 0.99
    assert estimator.run([(bell(False), ZZ)]).result()[0].data.stds == 0.5


def test_one_warning_names_every_option_a_simulator_ignores(session):
    estimator = EstimatorV2(
        mode=session,
        options={
            "resilience_level": 1,
            "twirling": {"enable_gates": True},
            "dynamical_decoupling": {"enable": True},
            "environment": {"log_level": "INFO", "job_tags": ["kept"]},
            "execution": {"rep_delay": 0.001},
            "default_precision": 0.0,
        },
    )
    with pytest.warns(RaySessionWarning) as record:
        job = estimator.run([(bell(False), ZZ)])
    ours = [w for w in record if issubclass(w.category, RaySessionWarning)]
    assert len(ours) == 1
    message = str(ours[0].message)
    for name in (
        "resilience_level",
        "twirling.enable_gates",
        "dynamical_decoupling.enable",
        "environment.log_level",
        "execution.rep_delay",
    ):
        assert name in message
    assert "job_tags" not in message
    assert ours[0].filename == __file__  # stacklevel: the caller's line
    assert job.result()[0].data.evs == pytest.approx(1.0)


def test_options_a_simulator_honours_do_not_warn(session):
    options = {
        "resilience_level": 0,
        "default_shots": 100,
        "simulator": {"seed_simulator": 3},
        "environment": {"job_tags": ["t"]},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = EstimatorV2(mode=session, options=options).run([(bell(False), ZZ)])
    assert [w for w in caught if issubclass(w.category, RaySessionWarning)] == []
    assert job.result()[0].data.evs == pytest.approx(1.0, abs=0.5)
    assert job.tags == ["t"]


def test_seed_simulator_makes_counts_reproducible_and_different_seeds_differ(session):
    circuit = ansatz(3)
    circuit.measure_all()
    pub = (circuit, values(circuit, 6), 64)
    split = {"raysession": {"chunk_size": 2}}

    def bits(seed):
        sampler = SamplerV2(mode=session, options={**split, "simulator": {"seed_simulator": seed}})
        job = sampler.run([pub])
        assert job.metrics()["num_chunks"] == 3
        return job.result()[0].data.meas.array

    first, again, other = bits(11), bits(11), bits(12)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_seed_as_a_generator_draws_one_seed_per_run(session):
    sampler = SamplerV2(
        mode=session,
        options={"default_shots": 200, "simulator": {"seed_simulator": np.random.default_rng(3)}},
    )
    first, second = _counts(sampler.run([bell()])), _counts(sampler.run([bell()]))
    assert first != second
    drawn = int(np.random.default_rng(3).integers(2**31))
    same = SamplerV2(
        mode=session, options={"default_shots": 200, "simulator": {"seed_simulator": drawn}}
    )
    assert _counts(same.run([bell()])) == first


def test_seed_estimator_seeds_the_estimates_as_aer_does(session):
    circuit = ansatz(2)
    pub = (circuit, SparsePauliOp("XZ"), values(circuit, 4))
    ours = EstimatorV2(mode=session, options={"seed_estimator": np.random.default_rng(8)})
    seed = int(np.random.default_rng(8).integers(2**31))
    theirs = AerEstimatorV2(
        options={"default_precision": 0.015625, "run_options": {"seed_simulator": seed}}
    )
    np.testing.assert_allclose(
        ours.run([pub]).result()[0].data.evs, theirs.run([pub]).result()[0].data.evs
    )


def test_noise_model_changes_results_and_equals_aer_with_that_noise(session):
    noise = _noise()
    pub = (bell(False), ZZ)
    clean = EstimatorV2(mode=session, options={"default_precision": 0.0})
    noisy = EstimatorV2(
        mode=session,
        options={
            "default_precision": 0.01,
            "simulator": {"noise_model": noise, "seed_simulator": 5},
        },
    )
    noisy_evs = noisy.run([pub]).result()[0].data.evs
    assert noisy_evs < 0.9
    aer = AerEstimatorV2(
        options={
            "default_precision": 0.01,
            "backend_options": {"noise_model": noise},
            "run_options": {"seed_simulator": 5},
        }
    )
    np.testing.assert_allclose(noisy_evs, aer.run([pub]).result()[0].data.evs)
    # The noise model is the job's own: the same workers still run noiseless jobs.
    assert clean.run([pub]).result()[0].data.evs == pytest.approx(1.0)


def test_default_precision_and_default_shots_set_the_stds(session):
    pub = (bell(False), ZZ)
    precise = EstimatorV2(mode=session, options={"default_precision": 0.02})
    assert precise.run([pub]).result()[0].data.stds == pytest.approx(0.02)
    shots = EstimatorV2(mode=session, options={"default_shots": 400, "default_precision": 0.02})
    assert shots.run([pub]).result()[0].data.stds == pytest.approx(0.05)


def test_qiskit_aer_primitives_options_give_aer_numbers(session):
    noise = _noise(0.1)
    circuit = ansatz(2)
    estimator_options = {
        "default_precision": 0.01,
        "backend_options": {"noise_model": noise},
        "run_options": {"seed_simulator": 21},
    }
    pub = (circuit, SparsePauliOp(["ZZ", "XI"]), values(circuit, 3))
    ours = EstimatorV2(mode=session, options=estimator_options).run([pub]).result()[0]
    theirs = AerEstimatorV2(options=estimator_options).run([pub]).result()[0]
    np.testing.assert_allclose(ours.data.evs, theirs.data.evs)

    sampler_options = {
        "backend_options": {"noise_model": noise},
        "run_options": {"seed_simulator": 8},
    }
    ours_bits = SamplerV2(mode=session, options=sampler_options).run([bell()]).result()[0]
    theirs_bits = AerSamplerV2(options=sampler_options).run([bell()]).result()[0]
    assert ours_bits.data.meas.num_shots == 1024  # Aer's default, not raysession's 4096
    np.testing.assert_array_equal(ours_bits.data.meas.array, theirs_bits.data.meas.array)
