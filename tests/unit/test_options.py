import pytest
from pydantic import ValidationError

from raysession import EstimatorOptions, SamplerOptions, SessionLimits


def test_defaults_match_qiskit_ibm_runtime():
    assert EstimatorOptions().default_precision == 0.015625
    assert EstimatorOptions().precision == 0.015625
    assert SamplerOptions().default_shots == 4096


def test_estimator_default_shots_sets_precision():
    assert EstimatorOptions(default_shots=10_000).precision == pytest.approx(0.01)
    with pytest.raises(ValidationError, match="not both"):
        EstimatorOptions(default_shots=100, default_precision=0.1)


@pytest.mark.parametrize(
    "bad",
    [
        {"unknown_field": 1},
        {"default_precision": -0.1},
        {"default_precision": "fast"},
        {"seed_simulator": -1},
        {"max_execution_time": 0},
        {"chunk_size": 0},
    ],
)
def test_bad_estimator_options_raise_at_construction(bad):
    with pytest.raises(ValidationError):
        EstimatorOptions(**bad)


def test_run_options_must_be_aer_options_and_not_reserved():
    assert SamplerOptions(run_options={"max_parallel_threads": 1}).run_options == {
        "max_parallel_threads": 1
    }
    with pytest.raises(ValidationError, match="Aer does not know"):
        SamplerOptions(run_options={"nonsense": 1})
    with pytest.raises(ValidationError, match="may not set"):
        SamplerOptions(run_options={"shots": 10})


def test_options_are_frozen():
    options = SamplerOptions()
    with pytest.raises(ValidationError):
        options.default_shots = 5


def test_session_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAYSESSION_MAX_MAX_TIME", "600")
    monkeypatch.setenv("RAYSESSION_MIN_MAX_TIME", "5")
    limits = SessionLimits.from_env()
    assert (limits.min_max_time, limits.max_max_time) == (5, 600)
    monkeypatch.setenv("RAYSESSION_MAX_MAX_TIME", "8h")
    with pytest.raises(ValueError, match="whole number of seconds"):
        SessionLimits.from_env()
