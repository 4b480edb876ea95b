import numpy as np
import pytest
from pydantic import ValidationError
from qiskit.transpiler import CouplingMap
from qiskit_aer.noise import NoiseModel, depolarizing_error

from raysession import EstimatorOptions, SamplerOptions, SessionLimits


def test_defaults_match_qiskit_ibm_runtime():
    estimator, sampler = EstimatorOptions(), SamplerOptions()
    assert estimator.default_precision == 0.015625 and estimator.precision == 0.015625
    assert estimator.default_shots is None and estimator.seed_estimator is None
    assert sampler.default_shots == 4096
    assert estimator.environment.log_level == "WARNING" and estimator.environment.job_tags is None
    assert estimator.dynamical_decoupling.sequence_type == "XX"
    assert estimator.twirling.strategy == "active-accum"
    assert estimator.execution.init_qubits is True
    assert sampler.execution.meas_type == "classified"
    assert estimator.resilience.zne.noise_factors == (1, 3, 5)
    assert estimator.raysession.chunk_size == 256 and estimator.raysession.circuit_cache


def test_options_that_qiskit_ibm_runtime_accepts_are_accepted():
    options = EstimatorOptions(
        resilience_level=1,
        twirling={"enable_gates": True, "num_randomizations": 16},
        dynamical_decoupling={"enable": True, "sequence_type": "XY4"},
        environment={"job_tags": ["a", "b"], "log_level": "INFO"},
        simulator={"seed_simulator": 1, "coupling_map": [[0, 1]], "basis_gates": ["cx"]},
        resilience={"zne_mitigation": True, "zne": {"noise_factors": [1, 2]}},
        execution={"rep_delay": 1e-4},
    )
    assert options.twirling.num_randomizations == 16
    assert options.resilience.zne.noise_factors == (1, 2)
    assert options.environment.job_tags == ["a", "b"]


def test_estimator_default_shots_overrides_precision():
    assert EstimatorOptions(default_shots=10_000).precision == pytest.approx(0.01)
    both = EstimatorOptions(default_shots=10_000, default_precision=0.5)
    assert both.precision == pytest.approx(0.01)


@pytest.mark.parametrize(
    "bad",
    [
        {"default_precision": -0.1},
        {"default_precision": "fast"},
        {"seed_estimator": -1},
        {"simulator": {"seed_simulator": -1}},
        {"max_execution_time": 0},
        {"raysession": {"chunk_size": 0}},
        {"resilience_level": 3},
        {"dynamical_decoupling": {"sequence_type": "YY"}},
        {"environment": {"log_level": "LOUD"}},
        {"twirling": {"num_randomizations": 0}},
        {"twirling": {"strategy": "some"}},
        {"resilience": {"zne": {"noise_factors": [0.5]}}},
    ],
)
def test_bad_estimator_options_raise_at_construction(bad):
    with pytest.raises(ValidationError):
        EstimatorOptions(**bad)


def test_unknown_names_raise_listing_the_valid_ones():
    with pytest.raises(ValidationError, match=r"no option 'bogus'.*valid options:.*default_shots"):
        EstimatorOptions(bogus=1)
    with pytest.raises(ValueError, match=r"no option 'seed'.*valid options: noise_model"):
        EstimatorOptions().simulator.seed = 1
    with pytest.raises(ValueError, match=r"no option 'shots'.*valid options:.*default_shots"):
        SamplerOptions().update(shots=10)
    with pytest.raises(ValueError, match="TwirlingOptions has no option 'enable'"):
        SamplerOptions().update(twirling={"enable": True})
    with pytest.raises(ValidationError, match="no option 'resilience_level'"):
        SamplerOptions(resilience_level=1)


def test_attribute_assignment_is_validated():
    options = EstimatorOptions()
    options.default_shots = 5000
    options.simulator.seed_simulator = 1
    options.simulator = {"noise_model": None, "seed_simulator": 2}
    assert options.default_shots == 5000 and options.simulator.seed_simulator == 2
    with pytest.raises(ValidationError, match="greater than 0"):
        options.default_shots = -1
    with pytest.raises(ValidationError):
        options.twirling.strategy = "nope"
    with pytest.raises(ValidationError):
        options.resilience_level = 7
    assert options.default_shots == 5000 and options.resilience_level == 0


def test_update_merges_nested_dicts_and_keeps_the_rest():
    options = SamplerOptions(simulator={"seed_simulator": 1, "basis_gates": ["cx"]})
    options.update(default_shots=100, simulator={"seed_simulator": 7}, raysession={"chunk_size": 3})
    assert options.default_shots == 100
    assert options.simulator.seed_simulator == 7 and options.simulator.basis_gates == ["cx"]
    assert options.raysession.chunk_size == 3 and options.raysession.circuit_cache


def test_update_checks_everything_before_changing_anything():
    options = EstimatorOptions()
    with pytest.raises(ValidationError):
        options.update(default_shots=100, simulator={"seed_simulator": -3})
    assert options.default_shots is None and options.simulator.seed_simulator is None


def test_resilience_validation_as_qiskit_ibm_runtime():
    with pytest.raises(ValidationError, match="cannot be simultaneously enabled"):
        EstimatorOptions(resilience={"pec_mitigation": True, "zne_mitigation": True})
    with pytest.raises(ValidationError, match="measure_mitigation"):
        EstimatorOptions(resilience={"measure_noise_learning": {"num_randomizations": 4}})
    EstimatorOptions(
        resilience={"measure_mitigation": True, "measure_noise_learning": {"num_randomizations": 4}}
    )


def test_unsupported_lists_what_a_simulator_does_not_honour():
    assert EstimatorOptions().unsupported() == []
    assert SamplerOptions().unsupported() == []
    honoured = EstimatorOptions(
        resilience_level=0,
        default_shots=10,
        simulator={"seed_simulator": 3},
        environment={"job_tags": ["x"]},
        raysession={"chunk_size": 4},
    )
    assert honoured.unsupported() == []
    options = EstimatorOptions(
        resilience_level=2,
        twirling={"enable_gates": True},
        dynamical_decoupling={"enable": True},
        execution={"init_qubits": False},
        environment={"log_level": "DEBUG"},
        simulator={"coupling_map": [[0, 1]]},
    )
    assert sorted(options.unsupported()) == [
        "dynamical_decoupling.enable",
        "environment.log_level",
        "execution.init_qubits",
        "resilience_level",
        "simulator.coupling_map",
        "twirling.enable_gates",
    ]
    sampler = SamplerOptions(execution={"meas_type": "kerneled"})
    assert sampler.unsupported() == ["execution.meas_type"]


def test_run_options_must_be_aer_options_and_not_reserved():
    options = SamplerOptions(raysession={"run_options": {"max_parallel_threads": 1}})
    assert options.raysession.run_options == {"max_parallel_threads": 1}
    with pytest.raises(ValidationError, match="Aer does not know"):
        SamplerOptions(raysession={"run_options": {"nonsense": 1}})
    with pytest.raises(ValidationError, match="may not set"):
        SamplerOptions(raysession={"run_options": {"shots": 10}})


def test_backend_options_are_checked_by_aer():
    with pytest.raises(ValidationError, match="Aer does not know"):
        EstimatorOptions(raysession={"backend_options": {"nonsense": 1}})
    with pytest.raises(ValidationError, match="invalid Aer option"):
        EstimatorOptions(raysession={"backend_options": {"method": "teleportation"}})


def test_noise_model_and_coupling_map_accept_their_qiskit_forms():
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    assert SamplerOptions(simulator={"noise_model": noise}).simulator.noise_model is noise
    with pytest.raises(ValidationError, match="NoiseModel"):
        SamplerOptions(simulator={"noise_model": {"errors": []}})
    mapped = SamplerOptions(simulator={"coupling_map": CouplingMap([[0, 1], [1, 2]])})
    assert mapped.simulator.coupling_map == [[0, 1], [1, 2]]


def test_a_job_snapshot_shares_nothing_and_draws_generator_seeds():
    generator = np.random.default_rng(5)
    options = EstimatorOptions(seed_estimator=generator, environment={"job_tags": ["a"]})
    first, second = options.for_job(), options.for_job()
    assert isinstance(first.seed(), int) and isinstance(second.seed(), int)
    assert first.seed() != second.seed()  # the generator advanced
    assert first.seed() == int(np.random.default_rng(5).integers(2**31))
    options.environment.job_tags.append("b")
    assert first.environment.job_tags == ["a"]
    assert options.seed_estimator is generator


def test_job_seed_prefers_seed_estimator():
    assert EstimatorOptions(simulator={"seed_simulator": 1}).for_job().seed() == 1
    both = EstimatorOptions(seed_estimator=2, simulator={"seed_simulator": 1})
    assert both.for_job().seed() == 2
    sampler = SamplerOptions(simulator={"seed_simulator": np.random.default_rng(0)})
    assert sampler.for_job().seed() == int(np.random.default_rng(0).integers(2**31))
    assert EstimatorOptions().for_job().seed() is None


def test_qiskit_aer_primitives_dict_form_is_mapped():
    estimator = EstimatorOptions.coerce(
        {
            "default_precision": 0.0,
            "backend_options": {"method": "density_matrix"},
            "run_options": {"seed_simulator": 9, "shots": 100, "max_parallel_threads": 1},
        }
    )
    assert estimator.default_precision == 0.0
    assert estimator.simulator.seed_simulator == 9
    assert estimator.raysession.backend_options == {"method": "density_matrix"}
    assert estimator.raysession.run_options == {"max_parallel_threads": 1}
    sampler = SamplerOptions.coerce({"run_options": {"seed_simulator": 4, "memory": True}})
    assert sampler.default_shots == 1024  # qiskit_aer.primitives.SamplerV2's default
    assert sampler.simulator.seed_simulator == 4 and sampler.raysession.run_options == {}
    with pytest.raises(ValueError, match="valid keys are"):
        SamplerOptions.coerce({"run_options": {}, "default_precision": 0.1})


def test_session_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAYSESSION_MAX_MAX_TIME", "600")
    monkeypatch.setenv("RAYSESSION_MIN_MAX_TIME", "5")
    limits = SessionLimits.from_env()
    assert (limits.min_max_time, limits.max_max_time) == (5, 600)
    monkeypatch.setenv("RAYSESSION_MAX_MAX_TIME", "8h")
    with pytest.raises(ValueError, match="whole number of seconds"):
        SessionLimits.from_env()
