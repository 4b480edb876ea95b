"""AerExecutor gives exactly the numbers of qiskit_aer.primitives (no Ray needed)."""

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit.library import efficient_su2
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_aer.primitives import SamplerV2 as AerSampler

from raysession.backends._aer_exec import AerExecutor
from raysession.backends._partition import PubSpec


def _est_spec(pub, key="c"):
    return (
        PubSpec(key, pub.parameter_values, observables=pub.observables, precision=pub.precision),
        pub.circuit,
    )


def _smp_spec(pub, key="c"):
    return (PubSpec(key, pub.parameter_values, shots=pub.shots), pub.circuit)


@pytest.mark.parametrize("precision", [0.0, 0.1])
def test_estimates_equal_aer_estimator(precision):
    circuit = efficient_su2(3, reps=1)
    circuit.metadata = {"tag": 1}
    obs = SparsePauliOp.from_list([("ZZI", 1.0), ("XIX", -0.5), ("IYY", 0.25)])
    values = np.random.default_rng(2).uniform(0, 3, (4, 5, circuit.num_parameters))
    pubs = [
        EstimatorPub.coerce((circuit, obs, values), precision),
        EstimatorPub.coerce((circuit, [[obs], [obs.adjoint()]], values[0]), precision),
        EstimatorPub.coerce((circuit.assign_parameters(values[0, 0]), "XXX"), precision),
    ]
    executor = AerExecutor({})
    ours = executor.estimate([_est_spec(p, str(i)) for i, p in enumerate(pubs)], 17, {})
    theirs = AerEstimator(options={"run_options": {"seed_simulator": 17}}).run(pubs).result()
    for got, want in zip(ours, theirs, strict=True):
        assert got.data.evs.shape == want.data.evs.shape
        np.testing.assert_allclose(got.data.evs, want.data.evs, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(got.data.stds, want.data.stds)
        assert got.metadata["target_precision"] == want.metadata["target_precision"]
        assert got.metadata["circuit_metadata"] == want.metadata["circuit_metadata"]


def test_samples_equal_aer_sampler_bit_for_bit():
    qr = QuantumRegister(3)
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(9, "b")
    odd = QuantumCircuit(qr, a, b)
    odd.h(0)
    odd.cx(0, 1)
    odd.x(2)
    odd.measure([0, 1], a)
    odd.measure([2, 0, 1, 2, 0, 1, 2, 0, 1], b)
    ansatz = efficient_su2(2, reps=1)
    ansatz.measure_all()
    values = np.random.default_rng(3).uniform(0, 3, (2, 3, ansatz.num_parameters))
    pubs = [
        SamplerPub.coerce((odd, None, 50)),
        SamplerPub.coerce((ansatz, values, 20)),
        SamplerPub.coerce((odd, None, 20)),
    ]
    ours = AerExecutor({}).sample([_smp_spec(p, str(i)) for i, p in enumerate(pubs)], 5, {})
    theirs = AerSampler(seed=5).run(pubs).result()
    for got, want in zip(ours, theirs, strict=True):
        assert set(got.data) == set(want.data)
        for name in want.data:
            mine, aers = getattr(got.data, name), getattr(want.data, name)
            assert mine.shape == aers.shape and mine.num_bits == aers.num_bits
            np.testing.assert_array_equal(mine.array, aers.array)
        assert got.metadata["shots"] == want.metadata["shots"]


def test_circuit_without_measurements_gives_empty_registers_like_aer():
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    ours = AerExecutor({}).sample([_smp_spec(SamplerPub.coerce((qc, None, 7)))], 1, {})
    assert ours[0].data.c.get_counts() == {"0": 7}
