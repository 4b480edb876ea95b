"""The raysession side of each benchmark: the same jobs as the baseline, through sessions on Ray.

Every function takes the shared :class:`~raysession.AerBackend` (started and warmed once by
the runner), opens its own Session or Batch, warms it up untimed, then times the jobs from
the driver: ``run(...)`` to ``result()``, so the round trips through Ray are included.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import ray
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
    pool_status,
)

from .workload import time_sequential_jobs

__all__ = [
    "estimator_sweep",
    "has_circuit_cache",
    "many_jobs",
    "sampler_sweep",
    "sequential_estimator_jobs",
    "two_sessions",
]


def has_circuit_cache() -> bool:
    """True if this raysession's estimator options have the ``circuit_cache`` switch
    (``options.raysession.circuit_cache``)."""
    return "raysession" in EstimatorOptions.model_fields


def _tree(flat: dict[str, Any]) -> dict[str, Any]:
    """The option tree of flat knobs: raysession's own go under ``raysession``, the seed
    under ``simulator``."""
    options = dict(flat)
    own = {k: options.pop(k) for k in ("chunk_size", "circuit_cache") if k in options}
    if own:
        options["raysession"] = own
    if "seed_simulator" in options:
        options["simulator"] = {"seed_simulator": options.pop("seed_simulator")}
    return options


def _sweep_options(chunk_size: int | None, **extra: Any) -> dict[str, Any]:
    options = dict(extra)
    if chunk_size is not None:
        options["chunk_size"] = chunk_size
    return _tree(options)


def _warm_values(values: np.ndarray, backend: AerBackend) -> np.ndarray:
    """Two parameter sets per worker; run with ``chunk_size=1`` every worker gets the circuit."""
    return values[: 2 * backend.num_workers]


def _warmed_sweep_estimator(
    session: Session,
    backend: AerBackend,
    pub: tuple[QuantumCircuit, SparsePauliOp, np.ndarray],
    chunk_size: int | None,
) -> EstimatorV2:
    """An exact estimator with ``chunk_size`` in ``session``, after an untimed run of
    ``pub``'s circuit on every worker."""
    circuit, observable, values = pub
    EstimatorV2(
        mode=session, options={"default_precision": 0.0, "raysession": {"chunk_size": 1}}
    ).run([(circuit, observable, _warm_values(values, backend))]).result()
    return EstimatorV2(mode=session, options=_sweep_options(chunk_size, default_precision=0.0))


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
        estimator = _warmed_sweep_estimator(
            session, backend, (circuit, observable, values), chunk_size
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
        SamplerV2(mode=session, options={"raysession": {"chunk_size": 1}}).run(
            [(circuit, warm, shots)]
        ).result()
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
        estimator = EstimatorV2(
            mode=session, options=_tree({**(options or {}), "default_precision": 0.0})
        )
        return time_sequential_jobs(estimator, circuit, observable, values, warmup_jobs)


def _grants(client: str) -> int:
    """Workers the pool has granted to ``client`` (a session id) so far."""
    return pool_status().grants.get(client, 0)


def _wait_until_running(client: str, job: RuntimeJobV2, timeout: float = 60.0) -> None:
    """Return once a pool worker runs a chunk of ``client`` (or ``job`` has finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(w.client == client for w in pool_status().workers):
            return
        if ray.wait([job], timeout=0, fetch_local=False)[0]:
            return
        time.sleep(0.005)
    raise RuntimeError(f"no pool worker ran a chunk of session {client} within {timeout} s")


def _jobs_while_running(
    estimator: EstimatorV2, pub: tuple[Any, ...], num_jobs: int, other: RuntimeJobV2
) -> list[float]:
    """Time up to ``num_jobs`` sequential jobs ``[pub]``, each waited for; none starts once
    ``other`` has finished. Returns each job's ``run(...).result()`` time."""
    per_job = []
    for _ in range(num_jobs):
        if ray.wait([other], timeout=0, fetch_local=False)[0]:
            break
        begun = time.perf_counter()
        estimator.run([pub]).result()
        per_job.append(time.perf_counter() - begun)
    return per_job


def two_sessions(
    backend: AerBackend,
    small: tuple[QuantumCircuit, SparsePauliOp],
    sweep: tuple[QuantumCircuit, SparsePauliOp, np.ndarray],
    chunk_size: int,
    num_jobs: int,
    warmup_jobs: int,
) -> dict[str, Any]:
    """Time session B's small jobs alone, then while session A runs one big sweep (W7).

    Every worker is started first (the pool may have released idle ones). B runs
    ``warmup_jobs`` untimed and ``num_jobs`` timed exact estimator jobs ``[small]``
    alone. Then A, warmed up on every worker, submits the exact sweep ``[sweep]`` with
    ``chunk_size``; once a worker runs one of A's chunks, B runs up to ``num_jobs`` more,
    starting none after A has finished; then A's result is waited for.

    Returns:
        ``alone_per_job_s`` and ``beside_per_job_s`` (B's jobs), ``b_grants_beside``
        (workers the pool granted B meanwhile), and A's ``sweep_s`` (submission to
        result), ``num_chunks``, ``num_workers`` (distinct workers that ran its chunks),
        ``longest_chunk_s`` and result ``shape``.
    """
    running = backend.warm_up(timeout=300)
    circuit, observable = small
    with Session(backend) as session_b:
        estimator = EstimatorV2(mode=session_b, options={"default_precision": 0.0})
        alone = time_sequential_jobs(estimator, circuit, observable, [None] * num_jobs, warmup_jobs)
        with Session(backend) as session_a:
            sweeper = _warmed_sweep_estimator(session_a, backend, sweep, chunk_size)
            grants = _grants(session_b.session_id)
            started = time.perf_counter()
            job = sweeper.run([sweep])
            _wait_until_running(session_a.session_id, job)
            beside = _jobs_while_running(estimator, small, num_jobs, job)
            b_grants = _grants(session_b.session_id) - grants
            result = job.result()
            sweep_s = time.perf_counter() - started
            metrics = job.metrics()
    return {
        "workers_running": running,
        "alone_per_job_s": alone["per_job_s"],
        "beside_per_job_s": beside,
        "b_grants_beside": b_grants,
        "sweep_s": sweep_s,
        "num_chunks": metrics["num_chunks"],
        "num_workers": len(set(metrics["workers"])),
        "longest_chunk_s": max(chunk["execution_s"] for chunk in metrics["chunks"]),
        "shape": tuple(result[0].data.evs.shape),
    }
