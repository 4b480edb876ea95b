"""EstimatorV2 on raysession equals Aer's EstimatorV2, accepts every PUB form, fails fast."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pydantic import ValidationError
from qiskit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV2, PrimitiveResult
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.quantum_info import Pauli, SparsePauliOp
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from raysession import AerBackend, EstimatorOptions, EstimatorV2, Session
from tests.helpers import ansatz, bell, observable, values


@pytest.fixture(scope="module")
def session(backend):
    # Not `with`: that would bind every primitive of the module to this session.
    session = Session(backend=backend)
    yield session
    session.close()


def _aer(pubs, precision=None, seed=None):
    options = {"default_precision": 0.0}
    if seed is not None:
        options["run_options"] = {"seed_simulator": seed}
    return AerEstimatorV2(options=options).run(pubs, precision=precision).result()


def test_estimator_subclasses_qiskit_base_and_returns_primitive_result(session):
    estimator = EstimatorV2(mode=session)
    assert isinstance(estimator, BaseEstimatorV2)
    result = estimator.run([(bell(False), "ZZ")]).result()
    assert isinstance(result, PrimitiveResult)
    assert result.metadata == {"version": 2}
    metadata = result[0].metadata
    assert metadata["target_precision"] == 0.015625
    assert set(metadata) == {"target_precision", "circuit_metadata", "simulator_metadata"}


def test_exact_expectation_values_equal_aer_to_1e_12(session):
    circuit, obs = ansatz(4), observable(4)
    vals = values(circuit, 50)
    pubs = [(circuit, obs, vals), (circuit, [[obs], [obs.adjoint()]], vals[:6].reshape(2, 3, -1))]
    ours = EstimatorV2(mode=session, options={"default_precision": 0}).run(pubs).result()
    theirs = _aer(pubs)
    for got, want in zip(ours, theirs, strict=True):
        assert got.data.evs.shape == want.data.evs.shape
        np.testing.assert_allclose(got.data.evs, want.data.evs, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(got.data.stds, want.data.stds)


def test_large_sweep_split_across_workers_still_equals_aer(session):
    circuit, obs = ansatz(4), observable(4)
    vals = values(circuit, 700)
    job = EstimatorV2(
        mode=session, options={"default_precision": 0, "raysession": {"chunk_size": 100}}
    ).run([(circuit, obs, vals)])
    result = job.result()
    np.testing.assert_allclose(
        result[0].data.evs, _aer([(circuit, obs, vals)])[0].data.evs, atol=1e-12
    )
    assert job.metrics()["num_chunks"] == 7


def test_seeded_noisy_estimates_are_reproducible_and_equal_aer(session):
    circuit, obs = ansatz(3), observable(3)
    vals = values(circuit, 20)
    estimator = EstimatorV2(
        mode=session, options={"simulator": {"seed_simulator": 42}, "default_precision": 0.05}
    )
    first = estimator.run([(circuit, obs, vals)]).result()[0].data.evs
    second = estimator.run([(circuit, obs, vals)]).result()[0].data.evs
    np.testing.assert_array_equal(first, second)
    aer = _aer([(circuit, obs, vals)], precision=0.05, seed=42)[0].data.evs
    np.testing.assert_allclose(first, aer, atol=1e-12)


def test_every_pub_form_qiskit_accepts_is_accepted(session):
    circuit = ansatz(2)
    vals = values(circuit, 4)
    plain = bell(False)
    estimator = EstimatorV2(mode=session, options={"default_precision": 0})
    pubs = [
        (plain, "ZZ"),
        (plain, Pauli("XX")),
        (plain, SparsePauliOp(["ZZ", "XX"])),
        (plain, [["ZZ"], ["XX"], ["YY"]]),
        (plain, {"ZZ": 1.0, "XX": -1.0}),
        (circuit, ObservablesArray.coerce("ZI"), vals),
        (circuit, "ZZ", vals[0]),
        (circuit, "ZZ", {tuple(circuit.parameters): vals}),
        (plain, "ZZ", None, 0.0),
    ]
    ours = estimator.run(pubs).result()
    theirs = _aer(pubs)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got.data.evs, want.data.evs, atol=1e-12)


def test_run_precision_argument_and_pub_precision_are_honoured(session):
    estimator = EstimatorV2(mode=session)
    result = estimator.run(
        [(bell(False), "ZZ"), (bell(False), "ZZ", None, 0.2)], precision=0.0
    ).result()
    assert result[0].metadata["target_precision"] == 0.0
    assert result[0].data.evs == pytest.approx(1.0)
    assert result[1].metadata["target_precision"] == 0.2


@pytest.mark.parametrize(
    "bad_pub",
    [
        (bell(False), "ZZZ"),  # observable on more qubits than the circuit
        (ansatz(2), "ZZ"),  # parameters without values
        (bell(False), "ZZ", None, -1.0),  # negative precision
    ],
)
def test_bad_pubs_raise_in_the_caller_before_anything_is_queued(session, bad_pub):
    estimator = EstimatorV2(mode=session)
    before = session.details().num_jobs
    with pytest.raises(ValueError):
        estimator.run([bad_pub])
    assert session.details().num_jobs == before


def test_bad_pub_type_raises_type_or_value_error(session):
    with pytest.raises((TypeError, ValueError)):
        EstimatorV2(mode=session).run([("not a circuit", "ZZ")])
    with pytest.raises(ValueError, match="at least one PUB"):
        EstimatorV2(mode=session).run([])


@pytest.mark.parametrize(
    "options", [{"bogus": 1}, {"default_precision": "x"}, {"max_execution_time": -1}]
)
def test_bad_options_raise_at_construction(session, options):
    with pytest.raises(ValidationError):
        EstimatorV2(mode=session, options=options)


def test_options_are_a_model_or_a_dict_and_readable_back(session):
    model = EstimatorOptions(default_precision=0.01, simulator={"seed_simulator": 3})
    assert EstimatorV2(mode=session, options=model).options is model
    from_dict = EstimatorV2(mode=session, options={"default_shots": 400})
    assert from_dict.options.precision == pytest.approx(0.05)
    with pytest.raises(ValueError, match="options must be a EstimatorOptions or a dict"):
        EstimatorV2(mode=session, options=[1, 2])


@pytest.mark.parametrize("mode", ["session", 42, object()])
def test_bad_mode_raises_value_error_saying_what_is_accepted(mode):
    with pytest.raises(ValueError, match="mode must be a raysession Session, Batch or backend"):
        EstimatorV2(mode=mode)


def test_no_mode_outside_a_with_block_runs_in_job_mode_on_the_default_backend(backend):
    # As qiskit_aer.primitives.EstimatorV2(): no session, Aer's default simulator.
    estimator = EstimatorV2(options={"default_precision": 0.0})
    assert isinstance(estimator.mode, AerBackend)
    assert estimator.mode is EstimatorV2().mode  # one default backend per process
    job = estimator.run([(bell(False), "ZZ")])
    assert float(job.result(timeout=120)[0].data.evs) == pytest.approx(1.0)
    assert job.session_id is None  # job mode


def test_max_execution_time_must_be_below_max_time(backend):
    with Session(backend=backend, max_time=60) as session:
        estimator = EstimatorV2(mode=session, options={"max_execution_time": 60})
        with pytest.raises(ValueError, match="must be smaller than the session's max_time"):
            estimator.run([(bell(False), "ZZ")])


def test_job_mode_with_a_backend_runs_without_a_session(backend):
    job = EstimatorV2(mode=backend, options={"default_precision": 0}).run([(bell(False), "ZZ")])
    assert job.result()[0].data.evs == pytest.approx(1.0)
    assert job.session_id is None


def test_no_warnings_from_raysession_on_a_normal_run(session):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EstimatorV2(mode=session, options={"default_precision": 0}).run(
            [(QuantumCircuit(1), "Z")]
        ).result()
