"""Circuits and jobs shared by the integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


# ------------------------------------------------------------------ signals the tests control

GATE_NAMESPACE = "raysession-tests"


class Gate:
    """A signal a test controls: each caller of :meth:`enter` waits for a permit.

    Run as a threaded named actor (see :func:`new_gate`), so many callers can wait at once.
    """

    def __init__(self) -> None:
        import threading

        self._cond = threading.Condition()
        self._permits = 0
        self._entered = 0
        self._passed = 0

    def enter(self) -> None:
        with self._cond:
            self._entered += 1
            self._cond.wait_for(lambda: self._permits > 0)
            self._permits -= 1
            self._passed += 1

    def allow(self, permits: int = 1) -> None:
        with self._cond:
            self._permits += permits
            self._cond.notify_all()

    def counts(self) -> tuple[int, int]:
        """(callers that entered, callers that passed)."""
        with self._cond:
            return self._entered, self._passed


def new_gate():
    """A fresh named :class:`Gate` actor and its name, returned once the actor answers.

    Waiting for it here means a worker that reaches the gate does not wait for an
    actor process to start, so a chunk reaches the gate soon after it starts.
    """
    import uuid

    import ray

    name = f"gate-{uuid.uuid4().hex[:8]}"
    handle = (
        ray.remote(Gate)
        .options(name=name, namespace=GATE_NAMESPACE, max_concurrency=64, num_cpus=0)
        .remote()
    )
    ray.get(handle.counts.remote(), timeout=120)
    return handle, name


def entered(gate) -> int:
    """How many callers reached ``gate`` so far (each one an unpickling in a worker)."""
    import ray

    return int(ray.get(gate.counts.remote())[0])


def _in_aer_worker() -> bool:
    import ray

    return ray.is_initialized() and (ray.get_runtime_context().get_actor_name() or "").startswith(
        "aer-"
    )


def _pass_gate(gate_name: str, circuit: QuantumCircuit) -> QuantumCircuit:
    """Unpickling a gated circuit: in an Aer worker, wait at the gate first."""
    if _in_aer_worker():
        import ray

        ray.get(ray.get_actor(gate_name, namespace=GATE_NAMESPACE).enter.remote())
    return circuit


def _crash_worker(circuit: QuantumCircuit) -> QuantumCircuit:
    """Unpickling a crashing circuit: an Aer worker process exits on the spot."""
    if _in_aer_worker():
        import os

        os._exit(1)
    return circuit


class _Reducing(QuantumCircuit):
    """A real circuit whose unpickling first calls a function (set per instance)."""

    def __reduce__(self):  # type: ignore[override]
        return self._reduce_with  # type: ignore[attr-defined]


def gated(circuit: QuantumCircuit, gate_name: str) -> QuantumCircuit:
    """``circuit``, made so that a worker unpickling it waits at the gate ``gate_name``.

    With ``circuit_cache=False`` every chunk unpickles its circuit, so every chunk waits.
    """
    wrapped = circuit.copy()
    wrapped.__class__ = _Reducing
    wrapped._reduce_with = (_pass_gate, (gate_name, circuit))  # type: ignore[attr-defined]
    return wrapped


def crashing(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit``, made so that a worker unpickling it exits (a crash of the simulation)."""
    wrapped = circuit.copy()
    wrapped.__class__ = _Reducing
    wrapped._reduce_with = (_crash_worker, (circuit,))  # type: ignore[attr-defined]
    return wrapped


def _break_in_worker(circuit: QuantumCircuit) -> QuantumCircuit:
    """Unpickling a failing circuit: in an Aer worker, it gains a gate Aer cannot run."""
    if _in_aer_worker():
        from qiskit.circuit import Gate as QiskitGate

        circuit = circuit.copy()
        circuit.append(QiskitGate("not_a_gate", 1, []), [0])
    return circuit


def failing(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit``, made so that its simulation fails in the worker (Aer: "unknown
    instruction: not_a_gate") while the caller's checks see a valid circuit: a gate Aer
    cannot run is refused at ``run()`` since issue 10, so a worker failure needs this."""
    wrapped = circuit.copy()
    wrapped.__class__ = _Reducing
    wrapped._reduce_with = (_break_in_worker, (circuit,))  # type: ignore[attr-defined]
    return wrapped


# ------------------------------------------------------------------ second drivers

REPO = Path(__file__).resolve().parents[1]


def run_driver(script: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (dedented) as a second driver process, connected to this process's
    Ray unless ``env`` says otherwise (``RAY_ADDRESS="local"``: a Ray of its own)."""
    import ray

    address = {"RAY_ADDRESS": ray.get_runtime_context().gcs_address} if ray.is_initialized() else {}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **address, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
