"""V2 primitive results turned into the older result types: ``Result``, ``EstimatorResult``,
``SamplerResult``; pure, no Ray.

The V2 sampler returns one :class:`~qiskit.primitives.BitArray` per classical
register. The older types key outcomes by memory slot: slot ``i`` is the
circuit's ``i``-th clbit, as Aer numbers them, so counts read ``"00"``/``"11"``
(registers separated by spaces) exactly as Aer's own ``Result`` does.
"""

from __future__ import annotations

import importlib.metadata
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives import EstimatorResult, PrimitiveResult, PubResult, SamplerResult
from qiskit.result import QuasiDistribution, Result
from qiskit.result.models import ExperimentResult, ExperimentResultData

try:
    PACKAGE_VERSION = importlib.metadata.version("raysession")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    PACKAGE_VERSION = "0"


@dataclass(frozen=True)
class CircuitLayout:
    """Where each classical register's bits go in a circuit's memory slots, plus its header."""

    registers: tuple[tuple[str, tuple[int, ...]], ...]
    """``(register name, memory slot of each of its bits)`` in the circuit's register order."""
    num_slots: int
    header: dict[str, Any]
    """The experiment header Aer writes: name, creg_sizes, memory_slots, n_qubits, ..."""

    @classmethod
    def of(cls, circuit: QuantumCircuit) -> CircuitLayout:
        """The layout of ``circuit``.

        Raises:
            ValueError: a clbit belongs to no classical register (the V2 sampler drops it).
        """
        in_registers = {bit for creg in circuit.cregs for bit in creg}
        loose = [circuit.find_bit(bit).index for bit in circuit.clbits if bit not in in_registers]
        if loose:
            raise ValueError(
                f"Circuit {circuit.name!r} has clbits {loose} outside any ClassicalRegister; "
                "add them to a register so their outcomes are returned."
            )
        registers = tuple(
            (creg.name, tuple(circuit.find_bit(bit).index for bit in creg))
            for creg in circuit.cregs
        )
        header = {
            "creg_sizes": [[creg.name, creg.size] for creg in circuit.cregs],
            "global_phase": float(circuit.global_phase),
            "memory_slots": circuit.num_clbits,
            "n_qubits": circuit.num_qubits,
            "name": circuit.name,
            "qreg_sizes": [[qreg.name, qreg.size] for qreg in circuit.qregs],
            "metadata": dict(circuit.metadata or {}),
        }
        return cls(registers, circuit.num_clbits, header)


def outcomes(
    pub_result: PubResult, layout: CircuitLayout
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Distinct shot outcomes as memory-slot integers, their counts, and each shot's index.

    Returns:
        ``(values, counts, inverse)``: ``values[inverse[s]]`` is shot ``s``'s outcome.
    """
    data = pub_result.data
    num_shots = data[layout.registers[0][0]].num_shots if layout.registers else 0
    bits = np.zeros((num_shots, max(layout.num_slots, 1)), dtype=bool)
    for name, slots in layout.registers:
        register_bits = data[name].to_bool_array(order="little").reshape(num_shots, len(slots))
        for position, slot in enumerate(slots):
            bits[:, slot] |= register_bits[:, position]
    # Big-endian bytes of each shot's integer: slot 0 is the lowest bit.
    packed = np.packbits(bits[:, ::-1], axis=1, bitorder="big")
    pad = packed.shape[1] * 8 - bits.shape[1]
    distinct, inverse, counts = np.unique(packed, axis=0, return_inverse=True, return_counts=True)
    values = [int.from_bytes(row.tobytes(), "big") >> pad for row in distinct]
    return values, counts, inverse.reshape(-1)


@dataclass(frozen=True)
class ToResult:
    """Turns a V2 sampler result into the ``Result`` a backend's ``run()`` returns."""

    layouts: tuple[CircuitLayout, ...]
    backend_name: str
    job_id: str
    memory: bool = False
    """Also return each shot's outcome (``Result.get_memory()``)."""
    seed: int | None = None
    """The job's seed, reported as each experiment's ``seed_simulator``."""

    def __call__(self, result: PrimitiveResult[PubResult]) -> Result:
        """The ``Result``, one experiment per circuit."""
        experiments = []
        for pub_result, layout in zip(result, self.layouts, strict=True):
            values, counts, inverse = outcomes(pub_result, layout)
            keys = [hex(value) for value in values]
            data: dict[str, Any] = {
                "counts": {key: int(n) for key, n in zip(keys, counts, strict=True)}
            }
            if self.memory:
                data["memory"] = [keys[i] for i in inverse]
            experiments.append(
                ExperimentResult(
                    shots=int(counts.sum()),
                    success=True,
                    data=ExperimentResultData(**data),
                    meas_level=2,
                    header=dict(layout.header),
                    status="DONE",
                    seed_simulator=self.seed,
                    metadata=dict(pub_result.metadata),
                )
            )
        return Result(
            backend_name=self.backend_name,
            backend_version=PACKAGE_VERSION,
            job_id=self.job_id,
            success=True,
            results=experiments,
            date=datetime.now(UTC).isoformat(),
            status="COMPLETED",
        )


@dataclass(frozen=True)
class ToEstimatorResult:
    """Turns a V2 estimator result (one scalar PUB per item) into an ``EstimatorResult``."""

    shots: int | None
    """The shots the precision stands for, reported in the metadata; ``None`` for exact values."""

    def __call__(self, result: PrimitiveResult[PubResult]) -> EstimatorResult:
        """Values and per-item metadata: shots, precision, standard error."""
        values = np.array([float(pub_result.data.evs) for pub_result in result], dtype=float)
        metadata = [
            {
                "shots": self.shots,
                "precision": pub_result.metadata.get("target_precision"),
                "std_error": float(pub_result.data.stds),
            }
            for pub_result in result
        ]
        return EstimatorResult(values, metadata)


@dataclass(frozen=True)
class ToSamplerResult:
    """Turns a V2 sampler result (one PUB per item) into a ``SamplerResult``."""

    layouts: tuple[CircuitLayout, ...]

    def __call__(self, result: PrimitiveResult[PubResult]) -> SamplerResult:
        """Quasi-probabilities keyed by memory-slot integers, and per-item metadata."""
        quasi_dists = []
        metadata = []
        for pub_result, layout in zip(result, self.layouts, strict=True):
            values, counts, _ = outcomes(pub_result, layout)
            shots = int(counts.sum())
            probabilities = {value: int(n) / shots for value, n in zip(values, counts, strict=True)}
            quasi_dists.append(
                QuasiDistribution(
                    probabilities, shots=shots, stddev_upper_bound=math.sqrt(1 / shots)
                )
            )
            metadata.append({"shots": shots})
        return SamplerResult(quasi_dists, metadata)
