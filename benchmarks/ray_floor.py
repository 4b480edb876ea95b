"""What Ray itself costs here: the same jobs through hand-written plain Ray actors.

Each floor actor holds Aer's own ``EstimatorV2`` (one thread, as raysession's workers)
and the circuit and observable, sent to it once: no session, no queue, no pool, no
deadlines, no result delivery, no circuit pickled per job. A job is one
``actor.run.remote(values)`` and one ``ray.get``. This is the "hand-written ``@ray.remote``
actor around an Aer primitive" at its leanest, and the least a Ray program pays per job
on this machine; raysession's targets are read against it.

The actors ask for no CPU (the pool's Aer workers hold the cluster's CPUs, and are idle
while the floor runs) and are killed after each measurement.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import ray
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp


class FloorActor:
    """A plain Ray actor around Aer's ``EstimatorV2``."""

    def __init__(self) -> None:
        from qiskit_aer.primitives import EstimatorV2

        self._estimator = EstimatorV2(
            options={"backend_options": {"max_parallel_threads": 1}, "default_precision": 0.0}
        )

        self._pub: tuple[Any, ...] = ()

    def load(self, circuit: QuantumCircuit, observable: SparsePauliOp) -> None:
        self._pub = (circuit, observable)

    def run(self, values: np.ndarray | None) -> Any:
        pub = self._pub if values is None else (*self._pub, values)
        return self._estimator.run([pub]).result()


@contextmanager
def floor_actors(
    count: int, circuit: QuantumCircuit, observable: SparsePauliOp
) -> Iterator[list[Any]]:
    """``count`` floor actors holding the circuit and observable; killed on exit."""
    actors: list[Any] = [ray.remote(num_cpus=0)(FloorActor).remote() for _ in range(count)]
    try:
        ray.get([actor.load.remote(circuit, observable) for actor in actors])
        yield actors
    finally:
        for actor in actors:
            ray.kill(actor)


def batch_jobs(
    count: int, circuit: QuantumCircuit, observable: SparsePauliOp, values: list[np.ndarray]
) -> dict[str, Any]:
    """One job per entry of ``values``, dealt round-robin to ``count`` actors, then gathered.

    Returns:
        ``total_s`` from the first submission to the last result, and the last ``evs``.
    """
    with floor_actors(count, circuit, observable) as actors:
        ray.get([actor.run.remote(values[0]) for actor in actors])
        started = time.perf_counter()
        refs = [actors[i % count].run.remote(v) for i, v in enumerate(values)]
        results = ray.get(refs)
        total = time.perf_counter() - started
    return {"total_s": total, "evs": np.asarray(results[-1][0].data.evs)}


def sequential_jobs(
    circuit: QuantumCircuit,
    observable: SparsePauliOp,
    values: list[np.ndarray | None],
    warmup_jobs: int,
) -> dict[str, Any]:
    """One job per entry of ``values`` on one actor, each waited for before the next.

    Returns:
        ``per_job_s`` (each ``ray.get(actor.run.remote(...))``) and the last ``evs``.
    """
    with floor_actors(1, circuit, observable) as (actor,):
        for v in values[:warmup_jobs]:
            ray.get(actor.run.remote(v))
        per_job, result = [], None
        for v in values:
            started = time.perf_counter()
            result = ray.get(actor.run.remote(v))
            per_job.append(time.perf_counter() - started)
    assert result is not None
    return {"per_job_s": per_job, "evs": np.asarray(result[0].data.evs)}
