"""Checks of PUBs made in the caller before a job is queued: what Qiskit's coercion lets
through and a worker would fail on (or silently get wrong).

Every submission passes :func:`coerce_pubs` (in a primitive's ``run()``) and
:func:`check_pubs` (in :func:`raysession._submit.submit_job`), so a bad PUB raises in
the caller's process and never reaches the session.
"""

from __future__ import annotations

import collections
import functools
import math
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import psutil
from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp, Gate
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

__all__ = ["check_pubs", "coerce_pubs", "has_measurements", "state_bytes"]

_ESTIMATOR_FIX = (
    "An estimator PUB is (circuit, observables[, parameter_values[, precision]]): "
    "observables act on the circuit's qubits with real coefficients (Hermitian), "
    "parameter_values give one value per circuit parameter in their last axis, and "
    "observables and parameter_values broadcast together."
)
_SAMPLER_FIX = (
    "A sampler PUB is a circuit or (circuit[, parameter_values[, shots]]): "
    "parameter_values give one value per circuit parameter in their last axis, and "
    "shots is a positive int."
)

# Bytes per amplitude: complex128, or complex64 with Aer's precision="single".
_AMPLITUDE_BYTES = {"double": 16, "single": 8}
# The state's size is amplitude_bytes * base ** num_qubits for these methods; the
# others (stabilizer, matrix_product_state, extended_stabilizer, tensor_network) grow
# otherwise and are not refused here.
_STATE_BASE = {"statevector": 2, "density_matrix": 4, "unitary": 4, "superop": 16}
# Instructions Aer runs that have no definition and are no Gate subclass's basis.
_AER_NAMES: frozenset[str] | None = None
_CLIFFORD = frozenset(
    {"id", "x", "y", "z", "h", "s", "sdg", "sx", "sxdg", "cx", "cy", "cz", "swap", "iswap",
     "ecr", "dcx", "measure", "reset", "barrier", "delay"}
)  # fmt: skip

# Content keys of circuits found runnable, so a circuit sent again is not scanned again.
_CHECKED_KEPT = 256
_checked: collections.OrderedDict[tuple[str, str, int], None] = collections.OrderedDict()
_checked_lock = threading.Lock()


def coerce_pubs(
    kind: Literal["estimator", "sampler"], pubs: Iterable[Any], default: float | int | None
) -> list[EstimatorPub] | list[SamplerPub]:
    """Coerce PUBs with Qiskit's own ``coerce``; an invalid one raises Qiskit's error
    class with the PUB's index and the form a PUB takes added to its message.

    Raises:
        ValueError, TypeError: a PUB is invalid, or there is none.
    """
    coerced: list[Any] = []
    for index, pub in enumerate(pubs):
        try:
            if kind == "estimator":
                coerced.append(EstimatorPub.coerce(pub, default))
            else:
                coerced.append(SamplerPub.coerce(pub, default))  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            fix = _ESTIMATOR_FIX if kind == "estimator" else _SAMPLER_FIX
            raise type(exc)(f"PUB {index} is invalid: {exc} {fix}") from exc
    if not coerced:
        raise ValueError("run() needs at least one PUB; pass a list of PUBs, e.g. [(circuit,)].")
    return coerced


def check_pubs(
    pubs: list[EstimatorPub] | list[SamplerPub],
    keys: list[str],
    aer_options: Mapping[str, Any],
) -> None:
    """Refuse coerced PUBs that would fail in a worker or give meaningless numbers.

    Args:
        pubs: Coerced PUBs.
        keys: Each PUB's circuit content key (see ``_submit.circuit_key``).
        aer_options: The Aer options the job runs with (the backend's and the job's).

    Raises:
        ValueError: a parameter value or a precision is not finite, a precision is
            negative, a circuit has a gate Aer cannot run, or a circuit's state does not
            fit in a worker's memory.
    """
    method = str(aer_options.get("method", "automatic"))
    limit = memory_limit_bytes(aer_options)
    for index, (pub, key) in enumerate(zip(pubs, keys, strict=True)):
        for values in pub.parameter_values.data.values():
            if not np.all(np.isfinite(values)):
                raise ValueError(
                    f"PUB {index} has a parameter value that is NaN or infinite; "
                    "parameter values must be finite numbers."
                )
        if isinstance(pub, EstimatorPub):
            precision = pub.precision
            if precision is None or not math.isfinite(precision) or precision < 0:
                raise ValueError(
                    f"PUB {index} has precision={precision!r}; precision must be a finite "
                    "number >= 0 (0 gives exact expectation values)."
                )
        seen = (key, method, limit)
        with _checked_lock:
            if seen in _checked:
                _checked.move_to_end(seen)
                continue
        _check_gates(pub.circuit, index)
        _check_memory(pub.circuit, index, method, aer_options, limit)
        with _checked_lock:
            _checked[seen] = None
            while len(_checked) > _CHECKED_KEPT:
                _checked.popitem(last=False)


def has_measurements(circuit: QuantumCircuit) -> bool:
    """Whether ``circuit`` measures any qubit (control-flow blocks included).

    A circuit without control flow is answered from its gate counts (microseconds);
    walking its instructions costs about 0.2 ms for a 100-gate ansatz, on every job."""
    if not circuit.has_control_flow_op():
        return "measure" in circuit.count_ops()
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name == "measure":
            return True
        if isinstance(operation, ControlFlowOp) and any(
            has_measurements(block) for block in operation.blocks
        ):
            return True
    return False


def state_bytes(num_qubits: int, method: str, precision: str = "double") -> int | None:
    """Bytes of a ``method`` state of ``num_qubits`` qubits, or ``None`` for a method
    whose memory does not grow as a power of the qubit count."""
    base = _STATE_BASE.get(method)
    if base is None:
        return None
    return int(_AMPLITUDE_BYTES.get(precision, 16) * base**num_qubits)


def memory_limit_bytes(aer_options: Mapping[str, Any]) -> int:
    """The memory a worker's simulator may use: Aer's ``max_memory_mb`` if set above 0,
    else the total memory of this machine (what Aer itself defaults to)."""
    max_memory_mb = aer_options.get("max_memory_mb")
    if isinstance(max_memory_mb, int) and max_memory_mb > 0:
        return max_memory_mb * 2**20
    return _total_memory()


@functools.cache
def _total_memory() -> int:
    """This machine's memory, read once (``psutil`` reads ``/proc`` each time)."""
    return int(psutil.virtual_memory().total)


def _aer_names() -> frozenset[str]:
    global _AER_NAMES
    if _AER_NAMES is None:
        from qiskit_aer import AerSimulator

        _AER_NAMES = frozenset(AerSimulator().configuration().basis_gates)
    return _AER_NAMES


def _check_gates(circuit: QuantumCircuit, index: int) -> None:
    for instruction in circuit.data:
        operation = instruction.operation
        if isinstance(operation, ControlFlowOp):
            for block in operation.blocks:
                _check_gates(block, index)
            continue
        if (
            isinstance(operation, Gate)
            and operation.name not in _aer_names()
            and operation.definition is None
        ):
            raise ValueError(
                f"PUB {index}'s circuit has gate {operation.name!r}, which Aer cannot run and "
                "which has no definition; define it (Gate(..., definition=...) or "
                "circuit.to_gate()) or transpile the circuit to Aer's basis gates."
            )


def _check_memory(
    circuit: QuantumCircuit, index: int, method: str, aer_options: Mapping[str, Any], limit: int
) -> None:
    if method == "automatic":
        # Aer picks the stabilizer method for a Clifford circuit, else (as a rule) the
        # statevector: only the latter is refused here.
        if all(inst.operation.name in _CLIFFORD for inst in circuit.data):
            return
        method = "statevector"
    needed = state_bytes(circuit.num_qubits, method, str(aer_options.get("precision", "double")))
    if needed is None or needed <= limit:
        return
    raise ValueError(
        f"PUB {index}'s circuit has {circuit.num_qubits} qubits: its {method} state needs "
        f"{needed:.3g} bytes, more than the {limit:.3g} bytes a worker may use "
        "(Aer's max_memory_mb, else the machine's memory). Use fewer qubits, or "
        'method="matrix_product_state" (or "stabilizer" for Clifford circuits) in the '
        "backend's or options.raysession.backend_options."
    )
