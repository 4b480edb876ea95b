"""Running estimator and sampler PUBs on one AerSimulator, exactly as qiskit_aer.primitives does.

The algorithms are those of ``qiskit_aer.primitives.EstimatorV2`` and
``SamplerV2`` (same simulator calls, seeds and bit packing, so the numbers are
identical), with three differences that matter for speed: no thread is started
per run, the estimator's instrumented circuits (``save_expectation_value`` per
Pauli) are cached by circuit key, and expectation values are combined with
numpy instead of a Python loop over every (binding, term) pair.
"""

from __future__ import annotations

import collections
import math
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives import BitArray, DataBin, PubResult, SamplerPubResult
from qiskit.quantum_info import Pauli
from qiskit.result import Result
from qiskit_aer import AerSimulator
from qiskit_aer.aererror import AerError

from ._partition import PubSpec

_INSTRUMENTED_ENTRIES = 64


class _InlineExecutor(Executor):
    """Runs Aer's job function in the calling thread.

    Aer hands every ``run()`` to an executor thread and blocks on it; in a Ray
    worker that thread hop costs more than a small simulation. Aer's public
    ``executor`` run option takes any ``concurrent.futures.Executor``.
    """

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future


class AerExecutor:
    """One AerSimulator and the estimator circuits instrumented for it."""

    def __init__(self, aer_options: dict[str, Any]) -> None:
        self._simulator = AerSimulator(**aer_options)
        self._inline = _InlineExecutor()
        self._instrumented: collections.OrderedDict[tuple[str, tuple[str, ...]], QuantumCircuit] = (
            collections.OrderedDict()
        )

    def estimate(
        self,
        pubs: list[tuple[PubSpec, QuantumCircuit]],
        seed: int,
        run_options: dict[str, Any],
    ) -> list[PubResult]:
        """Expectation values of estimator PUBs; one simulator run per PUB, as Aer does."""
        return [self._estimate_pub(pub, circuit, seed, run_options) for pub, circuit in pubs]

    def _instrument(
        self, key: str, circuit: QuantumCircuit, paulis: tuple[str, ...]
    ) -> QuantumCircuit:
        cache_key = (key, paulis)
        found = self._instrumented.get(cache_key)
        if found is not None:
            self._instrumented.move_to_end(cache_key)
            return found
        instrumented = circuit.copy()
        for pauli in paulis:
            instrumented.save_expectation_value(  # type: ignore[attr-defined]
                Pauli(pauli), qubits=range(circuit.num_qubits), label=pauli
            )
        self._instrumented[cache_key] = instrumented
        if len(self._instrumented) > _INSTRUMENTED_ENTRIES:
            self._instrumented.popitem(last=False)
        return instrumented

    def _estimate_pub(
        self, pub: PubSpec, circuit: QuantumCircuit, seed: int, run_options: dict[str, Any]
    ) -> PubResult:
        assert pub.observables is not None and pub.precision is not None
        observables = pub.observables
        values = pub.parameter_values
        precision = pub.precision
        param_shape = values.shape
        paulis = tuple(sorted({p for obs in observables.ravel() for p in obs}))
        instrumented = self._instrument(pub.circuit_key, circuit, paulis)
        param_array = values.as_array(circuit.parameters)
        binds = {p: param_array[..., i].ravel() for i, p in enumerate(circuit.parameters)}
        result = self._simulator.run(
            instrumented,
            parameter_binds=[binds],
            **run_options,
            seed_simulator=seed,
            executor=self._inline,
        ).result()
        num_sets = max(1, math.prod(param_shape))
        # expvals[i, j]: Pauli j on parameter set i (flat index, as Aer numbers experiments).
        expvals = np.empty((num_sets, len(paulis)), dtype=float)
        for i in range(num_sets):
            saved = result.data(i)  # builds a dict of every saved value: once per set
            expvals[i] = [saved[p] for p in paulis]
        column = {p: j for j, p in enumerate(paulis)}
        obs_flat = list(observables.ravel())
        coeffs = np.zeros((len(obs_flat), len(paulis)), dtype=complex)
        for k, obs in enumerate(obs_flat):
            for pauli, coeff in obs.items():
                coeffs[k, column[pauli]] += coeff
        shape = np.broadcast_shapes(param_shape, observables.shape)
        param_index = np.broadcast_to(np.arange(num_sets).reshape(param_shape), shape)
        obs_index = np.broadcast_to(np.arange(len(obs_flat)).reshape(observables.shape), shape)
        evs = np.einsum("...j,...j->...", expvals[param_index], coeffs[obs_index])
        if precision > 0:
            if not np.allclose(np.imag(evs), 0):
                raise ValueError("Given operator is not Hermitian and noise cannot be added.")
            rng = np.random.default_rng(seed)
            evs = rng.normal(np.real(evs), precision, evs.shape)
        evs = np.real(evs).astype(float)
        stds = np.full(shape, precision)
        return PubResult(
            DataBin(evs=evs, stds=stds, shape=evs.shape),
            metadata={
                "target_precision": precision,
                "circuit_metadata": circuit.metadata,
                "simulator_metadata": result.metadata,
            },
        )

    def sample(
        self,
        pubs: list[tuple[PubSpec, QuantumCircuit]],
        seed: int,
        run_options: dict[str, Any],
    ) -> list[SamplerPubResult]:
        """Bits of sampler PUBs; one simulator run per distinct shot count, as Aer does."""
        groups: dict[int, list[int]] = collections.defaultdict(list)
        for index, (pub, _) in enumerate(pubs):
            assert pub.shots is not None
            groups[pub.shots].append(index)
        results: list[SamplerPubResult | None] = [None] * len(pubs)
        for shots, members in groups.items():
            group = [pubs[i] for i in members]
            for index, pub_result in zip(
                members, self._sample_group(group, shots, seed, run_options), strict=True
            ):
                results[index] = pub_result
        return [r for r in results if r is not None]

    def _sample_group(
        self,
        pubs: list[tuple[PubSpec, QuantumCircuit]],
        shots: int,
        seed: int,
        run_options: dict[str, Any],
    ) -> list[SamplerPubResult]:
        circuits = [circuit for _, circuit in pubs]
        binds = []
        for pub, circuit in pubs:
            param_array = pub.parameter_values.as_array(circuit.parameters)
            binds.append({p: param_array[..., i].ravel() for i, p in enumerate(circuit.parameters)})
        result = self._simulator.run(
            circuits,
            shots=shots,
            seed_simulator=seed,
            parameter_binds=binds,
            memory=True,
            **run_options,
            executor=self._inline,
        ).result()
        memory = _memory(result)
        out = []
        start = 0
        for pub, circuit in pubs:
            shape = pub.parameter_values.shape
            end = start + max(1, math.prod(shape))
            out.append(_sampler_pub_result(memory[start:end], shots, shape, circuit, result))
            start = end
        return out


def _memory(result: Result) -> list[list[str]]:
    memory = []
    for experiment in result.results:
        if isinstance(experiment.status, str) and experiment.status.upper().startswith("ERROR"):
            raise AerError(f"Aer simulation failed: {experiment.status}")
        if hasattr(experiment.data, "memory") and experiment.data.memory:
            memory.append(experiment.data.memory)
        else:
            memory.append(["0x0"] * experiment.shots)
    return memory


def _num_bytes(num_bits: int) -> int:
    return (num_bits + 7) // 8


def _sampler_pub_result(
    memory: list[list[str]],
    shots: int,
    shape: tuple[int, ...],
    circuit: QuantumCircuit,
    result: Result,
) -> SamplerPubResult:
    """Packs Aer's hex memory into one BitArray per classical register."""
    registers = []
    total_bits = 0
    for creg in circuit.cregs:
        start = circuit.find_bit(creg[0]).index if creg.size else 0
        registers.append((creg.name, creg.size, start))
        total_bits = max(total_bits, start + creg.size)
    width = _num_bytes(total_bits)
    if width:
        raw = b"".join(int(h, 16).to_bytes(width, "big") for sample in memory for h in sample)
        packed = np.frombuffer(raw, dtype=np.uint8).reshape(len(memory), shots, width)
    else:
        packed = np.zeros((len(memory), shots, 0), dtype=np.uint8)
    # Unpacked bits, most significant (highest clbit) first, as Aer writes its memory.
    bits = np.unpackbits(packed, axis=-1, bitorder="big")
    fields = {}
    for name, size, start in registers:
        stop = bits.shape[-1] - start
        chosen = bits[..., stop - size : stop]
        padded = np.pad(chosen, [(0, 0), (0, 0), (-size % 8, 0)])
        array = np.packbits(padded, axis=-1, bitorder="big")
        fields[name] = BitArray(array.reshape((*shape, shots, _num_bytes(size))), size)
    return SamplerPubResult(
        DataBin(**fields, shape=shape),
        metadata={
            "shots": shots,
            "circuit_metadata": circuit.metadata,
            "simulator_metadata": result.metadata,
        },
    )
