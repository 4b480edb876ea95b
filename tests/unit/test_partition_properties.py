"""Property tests of splitting and joining: any job, split at any chunk size, joins to one Aer run.

For any broadcast shape of parameter values and observables (estimator) or of
parameter values (sampler), and any ``chunk_size``, the PUBs are split with
:func:`plan` and :func:`chunk_pubs`, each chunk is run by ``qiskit_aer.primitives``,
and :func:`join` must give what one Aer run of the unsplit PUBs gives. The circuits
make every number deterministic (exact expectation values; sampler outcomes that
are certain), so results are compared value for value, not only in shape.
"""

import itertools
import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import ParameterVector
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_aer.primitives import EstimatorV2 as AerEstimator
from qiskit_aer.primitives import SamplerV2 as AerSampler

from raysession.backends._partition import (
    TIMING_PREFIX,
    PubShape,
    PubSpec,
    chunk_pubs,
    join,
    num_bindings,
    plan,
)

# One thread: Aer's OpenMP start-up costs more than these tiny circuits (10 ms -> 2 ms a run).
_ONE_THREAD = {"max_parallel_threads": 1}
_ESTIMATOR = AerEstimator(options={"default_precision": 0, "backend_options": _ONE_THREAD})
_SAMPLER = AerSampler(seed=7, options={"backend_options": _ONE_THREAD})
_PROPERTY = settings(max_examples=40, deadline=None)

_SHAPE = st.sampled_from([0, 1, 2, 2, 3, 3]).flatmap(
    lambda rank: st.tuples(*[st.integers(1, 4)] * rank)
)


@st.composite
def _broadcast(draw):
    """Two shapes that broadcast together: size-1 axes and missing leading axes."""
    shape = draw(_SHAPE)

    def operand():
        # Biased to whole axes: a PUB is split only where its parameter values span axis 0.
        rank = len(shape) if draw(st.booleans()) else draw(st.integers(0, len(shape)))
        tail = shape[len(shape) - rank :]
        return tuple(n if draw(st.integers(0, 2)) else 1 for n in tail)

    return operand(), operand()


def _estimator_circuit(num_qubits):
    theta = ParameterVector("t", num_qubits + 1)
    qc = QuantumCircuit(num_qubits)
    for q in range(num_qubits):
        qc.ry(theta[q], q)
    for q in range(num_qubits - 1):
        qc.cx(q, q + 1)
    qc.rx(theta[num_qubits], 0)
    return qc


def _sampler_circuit(num_qubits):
    """``ry(pi * b)`` per qubit, ``b`` in {0, 1}: every shot measures the bits ``b``."""
    theta = ParameterVector("b", num_qubits)
    qr = QuantumRegister(num_qubits)
    every, first = ClassicalRegister(num_qubits, "every"), ClassicalRegister(1, "first")
    qc = QuantumCircuit(qr, every, first)
    for q in range(num_qubits):
        qc.ry(theta[q], q)
    qc.measure(qr, every)
    qc.measure(qr[0], first[0])
    return qc


@st.composite
def _observable(draw, num_qubits):
    paulis = st.text("IXYZ", min_size=num_qubits, max_size=num_qubits)
    if draw(st.booleans()):
        return draw(paulis)
    return draw(st.dictionaries(paulis, st.sampled_from([-1.0, 0.5, 2.0]), min_size=1, max_size=3))


@st.composite
def _estimator_pub(draw):
    num_qubits = draw(st.integers(1, 3))
    qc = _estimator_circuit(num_qubits)
    params_shape, obs_shape = draw(_broadcast())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.uniform(-np.pi, np.pi, (*params_shape, qc.num_parameters))
    observables = np.empty(obs_shape, dtype=object)
    for index in np.ndindex(obs_shape):
        observables[index] = draw(_observable(num_qubits))
    return EstimatorPub.coerce((qc, observables.tolist(), values), 0.0)


@st.composite
def _sampler_pub(draw):
    num_qubits = draw(st.integers(1, 3))
    qc = _sampler_circuit(num_qubits)
    params_shape = draw(_SHAPE)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.pi * rng.integers(0, 2, (*params_shape, num_qubits))
    return SamplerPub.coerce((qc, values, draw(st.integers(1, 40))))


@st.composite
def _job(draw, pub):
    """1-3 PUBs and a chunk size, often below the largest PUB's bindings so that it is split."""
    pubs = draw(st.lists(pub, min_size=1, max_size=3))
    costs = [max(1, math.prod(p.parameter_values.shape)) for p in pubs]
    return pubs, draw(st.integers(1, max(costs)) | st.integers(1, sum(costs) + 1))


def _split_run_join(pubs, chunk_size, primitive):
    """The job run as raysession runs it: planned, split, each chunk on its own, joined."""
    circuits = {}
    specs = []
    for pub in pubs:
        key = str(len(circuits))
        circuits[key] = pub.circuit
        if isinstance(pub, EstimatorPub):
            specs.append(PubSpec(key, pub.parameter_values, pub.observables, pub.precision))
        else:
            specs.append(PubSpec(key, pub.parameter_values, shots=pub.shots))
    chunks = plan(specs, chunk_size)
    _check_plan(specs, chunks, chunk_size)
    results = []
    for chunk in chunks:
        real = [
            EstimatorPub(circuits[p.circuit_key], p.observables, p.parameter_values, p.precision)
            if p.is_estimator
            else SamplerPub(circuits[p.circuit_key], p.parameter_values, p.shots)
            for p in chunk_pubs(specs, chunk)
        ]
        results.append(list(primitive.run(real).result()))
    joined = join(specs, chunks, results)
    # The courier joins from the PUBs' shapes alone; it must give the same result.
    by_shape = join([PubShape.of(p) for p in specs], chunks, results)
    return chunks, joined, by_shape


def _check_plan(specs, chunks, chunk_size):
    """Every PUB's rows are covered once, in order; no chunk holds more than it may."""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    covered = [[] for _ in specs]
    for chunk in chunks:
        for piece in chunk.pieces:
            covered[piece.pub_index].append(piece)
        sizes = [num_bindings(p) for p in chunk_pubs(specs, chunk)]
        if len(sizes) > 1:
            assert sum(sizes) <= chunk_size
        elif not chunk.pieces[0].is_whole:
            spec = specs[chunk.pieces[0].pub_index]
            per_row = num_bindings(spec) // PubShape.of(spec).shape[0]
            assert sizes[0] <= max(chunk_size, per_row)
    for spec, pieces in zip(specs, covered, strict=True):
        if len(pieces) == 1 and pieces[0].is_whole:
            continue
        assert all(not p.is_whole for p in pieces)
        bounds = [(p.start, p.stop) for p in pieces]
        assert bounds[0][0] == 0 and bounds[-1][1] == PubShape.of(spec).shape[0]
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(bounds))


def _without_timings(metadata):
    """A PUB's metadata with Aer's run timings blanked: no two runs share them."""
    simulator = {
        k: (None if k.startswith(TIMING_PREFIX) else v)
        for k, v in metadata["simulator_metadata"].items()
    }
    return {**metadata, "simulator_metadata": simulator}


def _assert_same_metadata(result, expected):
    assert result.metadata == expected.metadata == {"version": 2}
    for got, want in zip(result, expected, strict=True):
        assert _without_timings(got.metadata) == _without_timings(want.metadata)


def _fixed_estimator_pubs():
    """A sweep split row by row at chunk_size 2, next to a small PUB packed with another."""
    rng = np.random.default_rng(1)
    qc = _estimator_circuit(2)
    return [
        EstimatorPub.coerce(
            (qc, [["ZZ", {"XI": 0.5, "IY": -1.0}]], rng.uniform(0, 3, (4, 1, 3))), 0
        ),
        EstimatorPub.coerce((qc, "XX", rng.uniform(0, 3, (3,))), 0),
        EstimatorPub.coerce((_estimator_circuit(1), ["Z", "X"], rng.uniform(0, 3, (2,))), 0),
    ]


def _fixed_sampler_pubs():
    qc = _sampler_circuit(3)
    bits = np.array([[(i >> q) & 1 for q in range(3)] for i in range(8)]).reshape(4, 2, 3)
    return [
        SamplerPub.coerce((qc, np.pi * bits, 5)),
        SamplerPub.coerce((qc, np.pi * bits[0, 0], 3)),
        SamplerPub.coerce((_sampler_circuit(1), [[np.pi], [0.0]], 4)),
    ]


@_PROPERTY
@given(_job(_estimator_pub()))
@example((_fixed_estimator_pubs(), 2))
@example((_fixed_estimator_pubs(), 1))
def test_split_estimator_job_joins_to_one_aer_run_for_any_shape_and_chunk_size(job):
    pubs, chunk_size = job
    _, result, by_shape = _split_run_join(pubs, chunk_size, _ESTIMATOR)

    expected = _ESTIMATOR.run(pubs).result()
    assert len(result) == len(expected) == len(pubs)
    for got, same, want, pub in zip(result, by_shape, expected, pubs, strict=True):
        assert got.data.shape == want.data.shape == pub.shape
        assert got.data.evs.shape == want.data.evs.shape == pub.shape
        assert got.data.stds.shape == want.data.stds.shape == pub.shape
        np.testing.assert_allclose(got.data.evs, want.data.evs, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.data.stds, want.data.stds, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(same.data.evs, got.data.evs)
        assert same.data.shape == got.data.shape and same.metadata == got.metadata
    _assert_same_metadata(result, expected)


@_PROPERTY
@given(_job(_sampler_pub()))
@example((_fixed_sampler_pubs(), 2))
@example((_fixed_sampler_pubs(), 3))
@example((_fixed_sampler_pubs(), 4))
def test_split_sampler_job_joins_to_one_aer_run_for_any_shape_and_chunk_size(job):
    pubs, chunk_size = job
    _, result, by_shape = _split_run_join(pubs, chunk_size, _SAMPLER)

    expected = _SAMPLER.run(pubs).result()
    assert len(result) == len(expected) == len(pubs)
    for got, same, want, pub in zip(result, by_shape, expected, pubs, strict=True):
        assert got.data.shape == want.data.shape == pub.shape
        assert list(got.data) == list(want.data) == ["every", "first"]
        for name in want.data:
            bits, want_bits = getattr(got.data, name), getattr(want.data, name)
            assert bits.shape == want_bits.shape == pub.shape
            assert bits.num_shots == want_bits.num_shots == pub.shots
            assert bits.num_bits == want_bits.num_bits
            # Certain outcomes: a split, a dropped or a reordered row shows as different bits.
            np.testing.assert_array_equal(bits.array, want_bits.array)
            np.testing.assert_array_equal(getattr(same.data, name).array, bits.array)
        assert same.data.shape == got.data.shape and same.metadata == got.metadata
    _assert_same_metadata(result, expected)
