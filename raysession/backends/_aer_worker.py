"""AerWorker: hosts one Aer simulator in a Ray actor and runs chunks of jobs on it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from qiskit.primitives import PrimitiveResult, PubResult
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

from ..errors import ExecutionTimeoutError
from ._partition import Kind, Pub, join, whole_job


@dataclass(frozen=True)
class ChunkRequest:
    """One chunk of one job, as sent to a worker."""

    kind: Kind
    pubs: list[Pub]
    seed: int
    run_options: dict[str, Any]
    job_id: str
    chunk_index: int
    deadline: float | None = None
    """UNIX time after which the chunk is not started (the job ran out of time)."""
    job_metadata: dict[str, Any] | None = None
    """Set when this chunk is the whole job: the worker returns the job's result."""


class AerWorker:
    """Runs chunks on one Aer simulator; Aer's own primitives do the simulation.

    Owns: one Aer ``EstimatorV2`` and one ``SamplerV2`` built with the backend's
    Aer options. Concurrency: a synchronous actor, one chunk at a time; Aer uses
    as many OpenMP threads as the actor reserves CPUs (Ray sets
    ``OMP_NUM_THREADS``). Ordering: chunks run in the order each caller submits
    them. Called by: :class:`~raysession.backends.AerBackend` only.

    Because it drives Aer's primitives, a chunk's numbers are exactly those of
    ``qiskit_aer.primitives`` run with the chunk's seed.
    """

    def __init__(self, aer_options: dict[str, Any], worker_id: str) -> None:
        self._estimator = AerEstimatorV2(options={"backend_options": dict(aer_options)})
        self._sampler = AerSamplerV2(options={"backend_options": dict(aer_options)})
        self._id = worker_id

    def worker_id(self) -> str:
        """This worker's id (its Ray actor name)."""
        return self._id

    def run_chunk(self, request: ChunkRequest) -> list[PubResult] | PrimitiveResult[PubResult]:
        """Run one chunk.

        Returns:
            One result per PUB of the chunk, each with a ``"raysession"`` metadata
            entry; or the job's ``PrimitiveResult`` when the chunk is the whole job.

        Raises:
            ExecutionTimeoutError: the job's deadline passed before the chunk started.
        """
        if request.deadline is not None and time.time() > request.deadline:
            raise ExecutionTimeoutError(
                f"Job {request.job_id} ran past its max_execution_time; chunk "
                f"{request.chunk_index} was not started.",
                job_id=request.job_id,
            )
        started = time.perf_counter()
        primitive: AerEstimatorV2 | AerSamplerV2
        primitive = self._estimator if request.kind == "estimator" else self._sampler
        primitive.options.run_options = {**request.run_options, "seed_simulator": request.seed}
        results = list(primitive.run(request.pubs).result())  # type: ignore[arg-type]
        info = {
            "worker": self._id,
            "chunk": request.chunk_index,
            "chunk_seed": request.seed,
            "execution_s": time.perf_counter() - started,
        }
        for result in results:
            result.metadata["raysession"] = dict(info)
        if request.job_metadata is None:
            return results
        return join(request.pubs, whole_job(len(request.pubs)), [results], request.job_metadata)
