"""AerWorker: hosts one Aer simulator in a Ray actor, keeps a circuit cache and runs chunks."""

from __future__ import annotations

import collections
import pickle
import time
from dataclasses import dataclass, field
from typing import Any, cast

import ray
from qiskit import QuantumCircuit
from qiskit.primitives import PrimitiveResult, PubResult

from .._connect import NAMESPACE
from ..errors import ExecutionTimeoutError
from ._aer_exec import AerExecutor
from ._partition import Chunk, Kind, PubSpec, join, whole_job

DEFAULT_CACHE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class ChunkRequest:
    """One chunk of one job, as sent to a worker."""

    kind: Kind
    pubs: list[PubSpec]
    seed: int
    run_options: dict[str, Any]
    job_id: str
    chunk_index: int
    circuits: dict[str, bytes] = field(default_factory=dict)
    """Circuit key -> pickled circuit, for the keys this worker was not sent before
    (every key when ``use_cache`` is false); other keys are looked up by key."""
    use_cache: bool = True
    """False: unpickle the circuits of this request, bypassing the cache."""
    deadline: float | None = None
    """UNIX time after which the chunk is not started (the job ran out of time)."""
    job_metadata: dict[str, Any] | None = None
    """Set when this chunk is the whole job: the worker returns the job's result."""


class AerWorker:
    """Runs chunks on one Aer simulator, with the circuits it has seen cached.

    Owns: one :class:`AerExecutor` (an AerSimulator built with the backend's Aer
    options) and an LRU cache of unpickled circuits by content key, bounded by
    their pickled size. A circuit arrives with the first chunk that needs it and
    is named by key afterwards; a restarted worker (empty cache) fetches it back
    from the pool's :class:`CircuitStore`. Concurrency: a synchronous actor,
    one chunk at a time; Aer uses as many OpenMP threads as the actor reserves
    CPUs (Ray sets ``OMP_NUM_THREADS``). Ordering: chunks run in the order each
    caller submits them. Called by: :class:`~raysession.backends.AerBackend` only.

    Its numbers are exactly those of ``qiskit_aer.primitives`` run with the
    chunk's seed.
    """

    def __init__(
        self,
        aer_options: dict[str, Any],
        worker_id: str,
        store_name: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self._executor = AerExecutor(aer_options)
        self._id = worker_id
        # Looked up by name on the first refill: a handle among the constructor arguments
        # would be kept in the object store for restarts.
        self._store_name = store_name
        self._cache: collections.OrderedDict[str, tuple[QuantumCircuit, int]] = (
            collections.OrderedDict()
        )
        self._cache_bytes = 0
        self._cache_limit = cache_bytes
        self._misses = 0
        self._refills = 0

    def worker_id(self) -> str:
        """This worker's id (its Ray actor name)."""
        return self._id

    def cache_info(self) -> dict[str, int]:
        """Circuits cached, their pickled bytes, how many were unpickled since start
        (misses) and how many of those were fetched back from the store (refills)."""
        return {
            "circuits": len(self._cache),
            "bytes": self._cache_bytes,
            "misses": self._misses,
            "refills": self._refills,
        }

    def _circuit(self, key: str, request: ChunkRequest) -> QuantumCircuit:
        data = request.circuits.get(key)
        if not request.use_cache and data is not None:
            uncached: QuantumCircuit = pickle.loads(data)
            return uncached
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found[0]
        if data is None:
            # Sent before, but this worker restarted or evicted it: refill from the store.
            data = None
            if self._store_name is not None:
                store = ray.get_actor(self._store_name, namespace=NAMESPACE)
                fetched = cast("bytes | None", ray.get(store.get.remote(key)))
                data = fetched
            if data is None:
                raise RuntimeError(
                    f"circuit {key} of job {request.job_id} is no longer stored; resubmit the job"
                )
            self._refills += 1
        self._misses += 1
        circuit: QuantumCircuit = pickle.loads(data)
        self._cache[key] = (circuit, len(data))
        self._cache_bytes += len(data)
        while self._cache_bytes > self._cache_limit and len(self._cache) > 1:
            _, (_, size) = self._cache.popitem(last=False)
            self._cache_bytes -= size
        return circuit

    @ray.method(concurrency_group="join")  # type: ignore[misc]
    def join(
        self,
        pubs: tuple[PubSpec, ...],
        chunks: list[Chunk],
        job_metadata: dict[str, Any],
        *chunk_results: list[PubResult],
    ) -> PrimitiveResult[PubResult]:
        """Reassemble a split job's chunk results (see :func:`._partition.join`).

        Runs in its own concurrency group, beside a running chunk, so it never
        waits behind the chunks queued on this worker.
        """
        return join(pubs, chunks, list(chunk_results), job_metadata)

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
        pubs = [(pub, self._circuit(pub.circuit_key, request)) for pub in request.pubs]
        results: list[PubResult]
        if request.kind == "estimator":
            results = self._executor.estimate(pubs, request.seed, request.run_options)
        else:
            results = list(self._executor.sample(pubs, request.seed, request.run_options))
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
