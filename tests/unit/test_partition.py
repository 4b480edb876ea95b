import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_aer.primitives import SamplerV2 as AerSampler

from raysession.backends._partition import (
    PubSpec,
    chunk_pubs,
    chunk_seed,
    join,
    num_bindings,
    plan,
)


def _spec(pub):
    """A PubSpec for a coerced PUB; its circuit is kept in a table by key."""
    key = str(id(pub.circuit))
    _CIRCUITS[key] = pub.circuit
    if isinstance(pub, EstimatorPub):
        return PubSpec(
            key, pub.parameter_values, observables=pub.observables, precision=pub.precision
        )
    return PubSpec(key, pub.parameter_values, shots=pub.shots)


def _real(spec):
    circuit = _CIRCUITS[spec.circuit_key]
    if spec.is_estimator:
        return EstimatorPub(circuit, spec.observables, spec.parameter_values, spec.precision)
    return SamplerPub(circuit, spec.parameter_values, spec.shots)


_CIRCUITS = {}


def _circuit(measure=False):
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(b, 1)
    qc.cx(0, 1)
    if measure:
        qc.measure_all()
    return qc


def _run_chunks(kind, real_pubs, chunk_size, seed=11):
    pubs = [_spec(p) for p in real_pubs]
    chunks = plan(pubs, chunk_size)
    results = []
    for chunk in chunks:
        s = chunk_seed(seed, chunk.index, len(chunks))
        if kind == "estimator":
            prim = AerEstimator(options={"run_options": {"seed_simulator": s}})
        else:
            prim = AerSampler(seed=s)
        out = list(prim.run([_real(p) for p in chunk_pubs(pubs, chunk)]).result())
        for r in out:
            r.metadata["raysession"] = {
                "worker": "w",
                "chunk": chunk.index,
                "chunk_seed": s,
                "execution_s": 0.0,
            }
        results.append(out)
    return chunks, join(pubs, chunks, results, {"job_id": "j"})


def test_small_pubs_are_packed_into_one_chunk():
    qc = _circuit()
    pubs = [_spec(EstimatorPub.coerce((qc, "ZZ", np.ones((3, 2))), 0.0)) for _ in range(4)]
    chunks = plan(pubs, 256)
    assert len(chunks) == 1 and [p.pub_index for p in chunks[0].pieces] == [0, 1, 2, 3]


def test_large_sweep_is_split_evenly_along_the_leading_axis():
    qc = _circuit()
    pub = _spec(EstimatorPub.coerce((qc, "ZZ", np.zeros((2000, 2))), 0.0))
    chunks = plan([pub], 256)
    assert len(chunks) == 8
    assert [(p.start, p.stop) for c in chunks for p in c.pieces][:2] == [(0, 250), (250, 500)]
    assert sum(num_bindings(p) for c in chunks for p in chunk_pubs([pub], c)) == 2000


def test_plan_does_not_split_where_only_observables_vary():
    qc = _circuit()
    real = EstimatorPub.coerce((qc, [["ZZ"], ["XX"], ["YY"]], np.zeros((1, 300, 2))), 0.0)
    assert real.shape == (3, 300)
    pub = _spec(real)
    assert len(plan([pub], 100)) == 1


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
def test_split_estimator_equals_one_aer_run_exactly(chunk_size):
    qc = _circuit()
    rng = np.random.default_rng(3)
    pubs = [
        EstimatorPub.coerce((qc, [["ZZ", "XI"]], rng.uniform(0, 3, (20, 1, 2))), 0.0),
        EstimatorPub.coerce((qc.assign_parameters([0.3, 0.7]), "ZI"), 0.0),
        EstimatorPub.coerce((qc, ["ZZ", "IX"], rng.uniform(0, 3, (2, 2))), 0.0),
    ]
    _, result = _run_chunks("estimator", pubs, chunk_size)
    expected = AerEstimator().run(pubs).result()
    for got, want in zip(result, expected, strict=True):
        assert got.data.evs.shape == want.data.evs.shape
        np.testing.assert_allclose(got.data.evs, want.data.evs, atol=1e-12)
        np.testing.assert_array_equal(got.data.stds, want.data.stds)
    assert result.metadata == {"version": 2}


def test_split_sampler_keeps_shapes_and_registers():
    qc = _circuit(measure=True)
    pub = SamplerPub.coerce((qc, np.random.default_rng(1).uniform(0, 3, (9, 4, 2)), 50))
    chunks, result = _run_chunks("sampler", [pub], 8)
    assert len(chunks) == 5
    meas = result[0].data.meas
    assert meas.shape == (9, 4) and meas.num_shots == 50 and meas.num_bits == 2
    assert result[0].metadata["shots"] == 50
    assert result[0].metadata["raysession"]["chunks"] == [0, 1, 2, 3, 4]


def test_one_chunk_runs_with_the_job_seed_and_splits_derive_seeds():
    assert chunk_seed(1234, 0, 1) == 1234
    seeds = [chunk_seed(1234, i, 4) for i in range(4)]
    assert len(set(seeds)) == 4 and seeds == [chunk_seed(1234, i, 4) for i in range(4)]


def test_seeded_split_result_is_the_same_for_any_execution_order():
    qc = _circuit(measure=True)
    pub = SamplerPub.coerce((qc, np.random.default_rng(1).uniform(0, 3, (12, 2)), 100))
    _, first = _run_chunks("sampler", [pub], 4, seed=99)
    _, second = _run_chunks("sampler", [pub], 4, seed=99)
    np.testing.assert_array_equal(first[0].data.meas.array, second[0].data.meas.array)
