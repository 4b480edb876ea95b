"""Circuits and jobs shared by the integration tests."""

from __future__ import annotations

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp


def bell(measure: bool = True) -> QuantumCircuit:
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    if measure:
        qc.measure_all()
    return qc


def ansatz(num_qubits: int = 4, reps: int = 1) -> QuantumCircuit:
    return efficient_su2(num_qubits, reps=reps)


def observable(num_qubits: int = 4) -> SparsePauliOp:
    terms = [
        ("Z" * num_qubits, 1.0),
        ("X" + "I" * (num_qubits - 1), 0.5),
        ("IY" + "Z" * (num_qubits - 2), -0.25),
    ]
    return SparsePauliOp.from_list(terms)


def values(circuit: QuantumCircuit, num: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 2 * np.pi, (num, circuit.num_parameters))


def slow_pub(num_sets: int = 400) -> tuple[QuantumCircuit, str, np.ndarray]:
    """An estimator PUB that keeps one worker busy for roughly num_sets * 6 ms."""
    circuit = efficient_su2(14, reps=2)
    return (circuit, "Z" * 14, values(circuit, num_sets))


# Options that keep a slow PUB on one worker, so one job occupies exactly one worker.
ONE_CHUNK = {"default_precision": 0.0, "chunk_size": 100_000}
