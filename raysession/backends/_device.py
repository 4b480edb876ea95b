"""Simulated devices: one AerBackend per Qiskit ``BackendV2`` object, and the ISA check of the
circuits sent to a device's simulator."""

from __future__ import annotations

import collections
import threading
import weakref
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp
from qiskit.providers import BackendV2
from qiskit.transpiler import Target

from .aer import AerBackend
from .base import Backend

# Verdicts kept per (target, circuit content key); a circuit's key is itself cached per object.
_VERDICTS_KEPT = 1024

_lock = threading.Lock()
_simulators: weakref.WeakKeyDictionary[BackendV2, AerBackend] = weakref.WeakKeyDictionary()
_verdicts: collections.OrderedDict[tuple[int, str], tuple[Target, str | None]] = (
    collections.OrderedDict()
)


def simulator_of(device: BackendV2) -> AerBackend:
    """The :class:`AerBackend` simulating ``device``, built once per device object
    (:meth:`AerBackend.from_backend`), so repeated sessions and primitives on the same
    object share its description and its hidden job-mode batch."""
    with _lock:
        known = _simulators.get(device)
        if known is None:
            known = _simulators[device] = AerBackend.from_backend(device, name=device.name)
        return known


def isa_target(backend: Backend) -> Target | None:
    """The target circuits sent to ``backend`` must be ISA for, or ``None`` (no check: a
    plain simulator runs whatever Aer runs)."""
    if isinstance(backend, AerBackend) and backend.is_device:
        return backend.target
    return None


def check_isa(circuit: QuantumCircuit, key: str, target: Target, backend_name: str) -> None:
    """Refuse a circuit that is not ISA for ``target``: Aer would run its non-native gates
    noiselessly (qiskit-aer#2312), so noisy results would silently look ideal.

    Args:
        circuit: The circuit.
        key: Its content key (:func:`raysession._submit.circuit_key`); verdicts are kept by it.
        target: The device's target.
        backend_name: Named in the error.

    Raises:
        ValueError: the circuit has more qubits than the device, or an instruction the
            target lacks on its qubits; the message names the first and how to transpile.
    """
    with _lock:
        seen = _verdicts.get((id(target), key))
        if seen is not None and seen[0] is target:
            _verdicts.move_to_end((id(target), key))
            problem = seen[1]
        else:
            seen = None
    if seen is None:
        problem = _first_problem(circuit, target)
        with _lock:
            # The target is kept with its verdicts, so its id is not reused meanwhile.
            _verdicts[(id(target), key)] = (target, problem)
            while len(_verdicts) > _VERDICTS_KEPT:
                _verdicts.popitem(last=False)
    if problem is not None:
        raise ValueError(
            f"Circuit {circuit.name!r} is not ISA for backend {backend_name!r}: {problem}. "
            "Transpile it for the backend first: "
            "`generate_preset_pass_manager(backend=backend, optimization_level=1).run(circuit)`."
        )


def _first_problem(circuit: QuantumCircuit, target: Target) -> str | None:
    if target.num_qubits is not None and circuit.num_qubits > target.num_qubits:
        return f"it has {circuit.num_qubits} qubits and the backend {target.num_qubits}"
    return _first_unsupported(circuit, list(range(circuit.num_qubits)), target)


def _first_unsupported(circuit: QuantumCircuit, physical: list[int], target: Target) -> str | None:
    index = {bit: physical[i] for i, bit in enumerate(circuit.qubits)}
    for instruction in circuit.data:
        operation: Any = instruction.operation
        if operation.name == "barrier" or getattr(operation, "_directive", False):
            continue
        qargs = tuple(index[bit] for bit in instruction.qubits)
        if not target.instruction_supported(operation.name, qargs):
            return (
                f"instruction {operation.name!r} on qubits {qargs} is not supported by the target"
            )
        if isinstance(operation, ControlFlowOp):
            for block in operation.blocks:
                problem = _first_unsupported(block, list(qargs), target)
                if problem is not None:
                    return problem
    return None
