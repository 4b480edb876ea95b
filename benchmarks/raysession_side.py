"""The raysession side of each benchmark: the same jobs as the baseline, through sessions on Ray.

Every function takes the shared :class:`~raysession.AerBackend` (started and warmed once by
the runner), opens its own Session or Batch, warms it up untimed, then times the jobs from
the driver: ``run(...)`` to ``result()``, so the round trips through Ray are included.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from raysession import (
    AerBackend,
    Batch,
    EstimatorOptions,
    EstimatorV2,
    RuntimeJobV2,
    SamplerV2,
    Session,
)

from .workload import time_sequential_jobs

__all__ = [
    "estimator_sweep",
    "has_circuit_cache",
    "many_jobs",
    "sampler_sweep",
    "sequential_estimator_jobs",
]


def has_circuit_cache() -> bool:
    """True if this raysession's estimator options have the ``circuit_cache`` switch."""
    return "circuit_cache" in EstimatorOptions.model_fields


def _sweep_options(chunk_size: int | None, **extra: Any) -> dict[str, Any]:
    options = dict(extra)
    if chunk_size is not None:
        options["chunk_size"] = chunk_size
    return options


def _warm_values(values: np.ndarray, backend: AerBackend) -> np.ndarray:
    """Two parameter sets per worker; run with ``chunk_size=1`` every worker gets the circuit."""
    return values[: 2 * backend.num_workers]


def estimator_sweep(
    backend: AerBackend,
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    values: np.ndarray,
    chunk_size: int | None,
) -> dict[str, Any]:
    """Time one exact estimator job ``[(circuit, observable, values)]`` in a Session.

    Returns:
        ``seconds``, the ``evs``, and ``num_chunks`` the job was split into.
    """
    with Session(backend) as session:
        warm = _warm_values(values, backend)
        EstimatorV2(mode=session, options={"default_precision": 0.0, "chunk_size": 1}).run(
            [(circuit, observable, warm)]
        ).result()
        estimator = EstimatorV2(
            mode=session, options=_sweep_options(chunk_size, default_precision=0.0)
        )
        started = time.perf_counter()
        job = estimator.run([(circuit, observable, values)])
        result = job.result()
        seconds = time.perf_counter() - started
        num_chunks = job.metrics()["num_chunks"]
    return {"seconds": seconds, "evs": np.asarray(result[0].data.evs), "num_chunks": num_chunks}


def sampler_sweep(
    backend: AerBackend,
    circuit: QuantumCircuit,
    values: np.ndarray,
    shots: int,
    chunk_size: int | None,
    seed: int,
) -> dict[str, Any]:
    """Time one sampler job ``[(circuit, values, shots)]`` in a Session.

    Returns:
        ``seconds``, the result's ``shape`` and ``num_shots``, and ``num_chunks``.
    """
    with Session(backend) as session:
        warm = _warm_values(values, backend)
        SamplerV2(mode=session, options={"chunk_size": 1}).run([(circuit, warm, shots)]).result()
        sampler = SamplerV2(mode=session, options=_sweep_options(chunk_size, seed_simulator=seed))
        started = time.perf_counter()
        job = sampler.run([(circuit, values, shots)])
        result = job.result()
        seconds = time.perf_counter() - started
        num_chunks = job.metrics()["num_chunks"]
    bits = result[0].data.meas
    return {
        "seconds": seconds,
        "shape": tuple(bits.shape),
        "num_shots": bits.num_shots,
        "num_chunks": num_chunks,
    }


def many_jobs(
    backend: AerBackend,
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    values: list[np.ndarray],
) -> dict[str, Any]:
    """Submit one exact estimator job per entry of ``values`` to a Batch, then gather them all.

    Returns:
        ``total_s`` from the first submission to the last result, and the last job's ``evs``.
    """
    with Batch(backend) as batch:
        estimator = EstimatorV2(mode=batch, options={"default_precision": 0.0})
        warm = [estimator.run([(circuit, observable, v)]) for v in values[: backend.num_workers]]
        for job in warm:
            job.result()
        started = time.perf_counter()
        jobs: list[RuntimeJobV2] = [estimator.run([(circuit, observable, v)]) for v in values]
        results = [job.result() for job in jobs]
        total = time.perf_counter() - started
    return {"total_s": total, "evs": np.asarray(results[-1][0].data.evs)}


def sequential_estimator_jobs(
    backend: AerBackend,
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    values: list[np.ndarray | None],
    warmup_jobs: int,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one exact estimator job per entry of ``values`` in a Session, each waited for.

    An entry ``None`` means a job ``[(circuit, observable)]``.

    Returns:
        ``per_job_s`` (each ``run(...).result()``), ``total_s`` and the last job's ``evs``.
    """

    with Session(backend) as session:
        estimator = EstimatorV2(mode=session, options={**(options or {}), "default_precision": 0.0})
        return time_sequential_jobs(estimator, circuit, observable, values, warmup_jobs)
