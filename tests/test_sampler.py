"""SamplerV2 on raysession equals Aer's SamplerV2 at fixed seeds and fails fast on bad input."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.primitives import BaseSamplerV2, BitArray
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

from raysession import SamplerV2, Session
from tests.helpers import ansatz, bell, values


@pytest.fixture(scope="module")
def session(backend):
    # Not `with`: that would bind every primitive of the module to this session.
    session = Session(backend=backend)
    yield session
    session.close()


def _two_registers() -> QuantumCircuit:
    qr, a, b = QuantumRegister(3), ClassicalRegister(2, "alpha"), ClassicalRegister(1, "beta")
    qc = QuantumCircuit(qr, a, b)
    qc.h(0)
    qc.cx(0, 1)
    qc.x(2)
    qc.measure([0, 1], a)
    qc.measure(2, b)
    return qc


def test_sampler_subclasses_qiskit_base_and_has_one_bitarray_per_register(session):
    sampler = SamplerV2(mode=session, options={"default_shots": 100})
    assert isinstance(sampler, BaseSamplerV2)
    result = sampler.run([_two_registers()]).result()
    data = result[0].data
    assert isinstance(data.alpha, BitArray) and isinstance(data.beta, BitArray)
    assert data.alpha.num_shots == 100 and data.beta.get_counts() == {"1": 100}
    assert set(data.alpha.get_counts()) <= {"00", "11"}
    assert result.metadata == {"version": 2}
    assert result[0].metadata["shots"] == 100
    assert set(result[0].metadata) == {"shots", "circuit_metadata", "simulator_metadata"}


def test_seeded_counts_equal_aer_and_are_reproducible(session):
    circuit = ansatz(3)
    circuit.measure_all()
    vals = values(circuit, 5)
    pubs = [(bell(), None, 300), (circuit, vals, 200), _two_registers()]
    sampler = SamplerV2(mode=session, options={"simulator": {"seed_simulator": 123}})
    ours = sampler.run(pubs, shots=64).result()
    again = sampler.run(pubs, shots=64).result()
    theirs = AerSamplerV2(seed=123).run(pubs, shots=64).result()
    for got, repeat, want in zip(ours, again, theirs, strict=True):
        for name in want.data:
            np.testing.assert_array_equal(
                getattr(got.data, name).array, getattr(want.data, name).array
            )
            np.testing.assert_array_equal(
                getattr(got.data, name).array, getattr(repeat.data, name).array
            )


def test_default_shots_is_4096_and_run_shots_override(session):
    sampler = SamplerV2(mode=session)
    assert sampler.run([bell()]).result()[0].data.meas.num_shots == 4096
    assert sampler.run([bell()], shots=10).result()[0].data.meas.num_shots == 10


def test_sweep_shape_is_kept(session):
    circuit = ansatz(2)
    circuit.measure_all()
    vals = values(circuit, 12).reshape(3, 4, -1)
    result = (
        SamplerV2(mode=session, options={"raysession": {"chunk_size": 2}})
        .run([(circuit, vals, 16)])
        .result()
    )
    assert result[0].data.meas.shape == (3, 4)
    assert result[0].data.meas.num_shots == 16


def test_circuit_without_classical_registers_warns_in_the_caller(session):
    qc = QuantumCircuit(1)
    qc.h(0)
    with pytest.warns(UserWarning, match="no output classical registers"):
        job = SamplerV2(mode=session).run([qc], shots=5)
    job.result()


@pytest.mark.parametrize("bad_pub", [(bell(), None, 0), (ansatz(2),), (bell(), None, -3)])
def test_bad_pubs_raise_in_the_caller(session, bad_pub):
    with pytest.raises(ValueError):
        SamplerV2(mode=session).run([bad_pub])


def test_bad_options_raise_at_construction(session):
    with pytest.raises(ValidationError):
        SamplerV2(mode=session, options={"default_shots": 0})
    with pytest.raises(ValidationError):
        SamplerV2(mode=session, options={"shots": 10})
