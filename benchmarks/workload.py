"""The benchmark workloads: their sizes (full and quick) and their circuits, observables and values.

Everything here is deterministic (fixed seeds) and imports neither Ray nor raysession, so the
raw-Aer process and the raysession driver build, or receive, exactly the same inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator

NUM_QUBITS = 14
SMALL_QUBITS = 12
"""Width of the sweep ansatz (``efficient_su2(14, reps=2)``: 84 parameters)."""
NUM_TERMS = 30
"""Pauli terms of the sweep observable."""
OBSERVABLE_SEED = 1234
VALUES_SEED = 5678


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is; :data:`FULL` is issue #4's size, :data:`QUICK` a smoke test."""

    sweep_sets: int = 2000
    """Parameter sets of the estimator and sampler sweeps (W1, W2)."""
    shots: int = 1024
    """Shots per parameter set of the sampler sweep (W2)."""
    many_jobs: int = 200
    """Independent jobs submitted to one Batch (W3)."""
    sets_per_job: int = 10
    """Parameter sets in each of those jobs (W3, W3b)."""
    small_jobs: int = 40
    """Independent jobs of the 12-qubit ansatz submitted to one Batch (W3b)."""
    tiny_jobs: int = 500
    """Sequential Bell-state estimator jobs timed one by one (W4)."""
    loop_jobs: int = 300
    """Sequential one-parameter-set jobs of the optimizer loop (W5)."""
    memory_jobs_first: int = 100
    """Tiny jobs after which the first memory reading is taken (W6)."""
    memory_jobs_last: int = 10_000
    """Tiny jobs after which the second memory reading is taken (W6)."""
    sessions: int = 50
    """Concurrent sessions opened on one shared backend (W6)."""
    side_jobs: int = 100
    """Sequential Bell-state jobs of session B, alone and then beside session A's sweep (W7)."""
    side_sweep_sets: int = 2000
    """Parameter sets of session A's sweep, which runs while B's jobs run (W7)."""
    side_chunk_size: int = 64
    """``chunk_size`` of A's sweep: small, so that A has many chunks (W7)."""
    warmup_jobs: int = 20
    """Untimed jobs before each timed series of small jobs."""
    chunk_size: int | None = None
    """raysession's ``chunk_size`` for the sweeps; ``None`` keeps raysession's default (256)."""


FULL = Sizes()
QUICK = Sizes(
    sweep_sets=48,
    many_jobs=16,
    sets_per_job=4,
    small_jobs=8,
    tiny_jobs=50,
    loop_jobs=20,
    memory_jobs_first=20,
    memory_jobs_last=500,
    sessions=5,
    side_jobs=10,
    side_sweep_sets=96,
    side_chunk_size=4,
    warmup_jobs=5,
    # Small enough that the quick sweeps are still split across every worker.
    chunk_size=8,
)


def small_circuit() -> QuantumCircuit:
    """W3b's ansatz ``efficient_su2(12, reps=2)``, transpiled once for Aer: a job of 10
    parameter sets runs in tens of milliseconds, so per-job overhead shows."""
    return transpile(efficient_su2(SMALL_QUBITS, reps=2), AerSimulator(), optimization_level=0)


def small_observable() -> SparsePauliOp:
    """30 random 12-qubit Pauli terms (``default_rng(1234)``), as :func:`sweep_observable`."""
    rng = np.random.default_rng(OBSERVABLE_SEED)
    labels = ["".join(rng.choice(list("IXYZ"), SMALL_QUBITS)) for _ in range(NUM_TERMS)]
    return SparsePauliOp(labels, rng.uniform(-1.0, 1.0, NUM_TERMS))


def sweep_circuit(*, measure: bool = False) -> QuantumCircuit:
    """The sweep ansatz ``efficient_su2(14, reps=2)``, transpiled once for Aer.

    Both sides get this very circuit; transpiling at level 0 for ``AerSimulator`` leaves
    its ``ry``/``rz``/``cx`` gates as they are, and ``measure=True`` adds ``measure_all()``.
    """
    circuit = efficient_su2(NUM_QUBITS, reps=2)
    if measure:
        circuit.measure_all()
    return transpile(circuit, AerSimulator(), optimization_level=0)


def sweep_observable() -> SparsePauliOp:
    """30 random 14-qubit Pauli terms with random real coefficients (``default_rng(1234)``)."""
    rng = np.random.default_rng(OBSERVABLE_SEED)
    labels = ["".join(rng.choice(list("IXYZ"), NUM_QUBITS)) for _ in range(NUM_TERMS)]
    coeffs = rng.uniform(-1.0, 1.0, NUM_TERMS)
    return SparsePauliOp(labels, coeffs)


def sweep_values(num_sets: int, num_parameters: int) -> np.ndarray:
    """``num_sets`` parameter sets drawn uniformly from [0, 2π) (``default_rng(5678)``)."""
    rng = np.random.default_rng(VALUES_SEED)
    return rng.uniform(0.0, 2.0 * np.pi, (num_sets, num_parameters))


def bell_circuit() -> QuantumCircuit:
    """The tiny job's circuit: a Bell state (H, CX) on 2 qubits."""
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    return circuit


def bell_observable() -> SparsePauliOp:
    """The tiny job's observable, ``ZZ``."""
    return SparsePauliOp("ZZ")


def time_sequential_jobs(
    estimator: Any,
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    values: list[np.ndarray | None],
    warmup_jobs: int,
) -> dict[str, Any]:
    """Time one estimator job per entry of ``values``, each waited for before the next.

    Shared by the raw-Aer and the raysession side so both measure the same loop; an
    entry ``None`` means a job ``[(circuit, observable)]``.

    Returns:
        ``per_job_s`` (each ``run(...).result()``), ``total_s`` and the last job's ``evs``.
    """

    def pub(entry: np.ndarray | None) -> tuple[Any, ...]:
        return (circuit, observable) if entry is None else (circuit, observable, entry)

    for entry in values[:warmup_jobs]:
        estimator.run([pub(entry)]).result()
    per_job = []
    evs = None
    started = time.perf_counter()
    for entry in values:
        begun = time.perf_counter()
        evs = estimator.run([pub(entry)]).result()[0].data.evs
        per_job.append(time.perf_counter() - begun)
    total = time.perf_counter() - started
    return {"per_job_s": per_job, "total_s": total, "evs": np.asarray(evs)}
