"""AerBackend: a pool of AerWorker actors that runs jobs split into chunks."""

from __future__ import annotations

import collections
import itertools
import logging
import uuid
from typing import Any

import ray
from qiskit_aer import AerSimulator
from qiskit_aer.aererror import AerError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .._connect import NAMESPACE, actor_name, ensure_ray
from ._aer_worker import AerWorker, ChunkRequest
from ._circuit_store import CircuitStore
from ._partition import chunk_pubs, chunk_seed, plan
from .base import BackendRun, JobSpec

logger = logging.getLogger(__name__)

__all__ = ["AerBackend"]


# Circuit keys a backend copy remembers as sent to each worker (and as stored).
_TRACKED_KEYS = 4096


def worker_options(num_cpus: float, num_gpus: float) -> dict[str, Any]:
    """Ray options of one AerWorker actor."""
    return {
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        # A dead worker is restarted and its chunks re-run until they finish: chunks are
        # pure, a job's max_execution_time bounds the wait, and a closed pool's workers are
        # dead for good, which fails their chunks at once (BackendUnavailableError).
        "max_restarts": -1,
        "max_task_retries": -1,
        "scheduling_strategy": "SPREAD",
    }


class AerBackend:
    """A pool of Ray actors, each hosting an Aer simulator.

    Jobs are split into chunks (see ``chunk_size`` in the primitives' options),
    the chunks run across the pool, and the results are reassembled in order.
    Each worker reserves ``num_cpus_per_worker`` CPUs and Ray caps Aer's OpenMP
    threads to that number, so ``num_workers * num_cpus_per_worker`` CPUs are
    used. The default, one CPU per worker and one worker per CPU Ray sees, suits
    parameter sweeps; for one large circuit (20+ qubits) use fewer workers with
    more CPUs each so Aer parallelises the state vector.

    Lifecycle: workers start at construction and live until :meth:`close`, the
    end of a ``with`` block, or the exit of the process that created the backend
    (they are owned by it). Any number of sessions may share one backend; the
    backend pickles, and copies share the same workers.

    Args:
        num_workers: Worker actors to start. Default: the CPUs Ray sees divided by
            ``num_cpus_per_worker``.
        num_cpus_per_worker: CPUs each worker reserves (and Aer threads it uses).
        num_gpus_per_worker: GPUs each worker reserves; set with ``device="GPU"``.
        name: The backend's name, as reported by sessions.
        **aer_options: Options of :class:`qiskit_aer.AerSimulator` (``method``,
            ``device``, ``precision``, ``noise_model``, ...).

    Raises:
        ValueError: an Aer option is unknown or invalid, or a count is not positive.

    Example:
        >>> backend = AerBackend(num_workers=2, method="statevector")  # doctest: +SKIP
        >>> backend.num_workers  # doctest: +SKIP
        2
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        num_cpus_per_worker: float = 1,
        num_gpus_per_worker: float = 0,
        name: str = "aer_simulator",
        **aer_options: Any,
    ) -> None:
        if num_workers is not None and num_workers <= 0:
            raise ValueError(f"num_workers must be positive, not {num_workers}")
        if num_cpus_per_worker < 0 or num_gpus_per_worker < 0:
            raise ValueError("num_cpus_per_worker and num_gpus_per_worker must not be negative")
        _check_aer_options(aer_options, remote_gpu=num_gpus_per_worker > 0)
        ensure_ray()
        if num_workers is None:
            cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
            num_workers = max(1, int(cpus // max(num_cpus_per_worker, 1)))
        _warn_if_unplaceable(num_workers, num_cpus_per_worker, num_gpus_per_worker)
        self._id = uuid.uuid4().hex
        self._name = name
        self._aer_options = dict(aer_options)
        self._store: Any = (
            ray.remote(CircuitStore)
            .options(
                name=actor_name("aer-store", self._id[:12]),
                namespace=NAMESPACE,
                num_cpus=0,
                max_restarts=-1,
                scheduling_strategy=_store_placement(),
            )
            .remote()
        )
        # Reassembly runs beside the chunks, on its own thread: see AerWorker.join.
        actor_cls: Any = ray.remote(concurrency_groups={"join": 1})(  # type: ignore[call-overload]
            AerWorker
        )
        options = worker_options(num_cpus_per_worker, num_gpus_per_worker)
        self._worker_names = [
            actor_name("aer", f"{self._id[:12]}-{slot}") for slot in range(num_workers)
        ]
        self._workers: list[Any] = [
            actor_cls.options(name=name, namespace=NAMESPACE, **options).remote(
                self._aer_options, name, actor_name("aer-store", self._id[:12])
            )
            for name in self._worker_names
        ]
        self._init_tracking()
        logger.info("AerBackend %s started %d workers", self._id, num_workers)

    def _init_tracking(self) -> None:
        """Per copy: round-robin counter, and which circuits were sent where and stored."""
        self._counter = itertools.count()
        self._sent: list[collections.OrderedDict[str, None]] = [
            collections.OrderedDict() for _ in self._workers
        ]
        self._stored: collections.OrderedDict[str, None] = collections.OrderedDict()

    @classmethod
    def _restore(
        cls,
        backend_id: str,
        name: str,
        aer_options: dict[str, Any],
        workers: list[Any],
        store: Any,
    ) -> AerBackend:
        self = cls.__new__(cls)
        self._id, self._name, self._aer_options = backend_id, name, aer_options
        self._workers, self._store = workers, store
        self._worker_names = [
            actor_name("aer", f"{backend_id[:12]}-{slot}") for slot in range(len(workers))
        ]
        self._init_tracking()
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        state = (self._id, self._name, self._aer_options, self._workers, self._store)
        return (AerBackend._restore, state)

    @property
    def name(self) -> str:
        """The backend's name."""
        return self._name

    @property
    def backend_id(self) -> str:
        """A unique id of this pool; pickled copies share it."""
        return self._id

    @property
    def num_workers(self) -> int:
        """Number of worker actors in the pool."""
        return len(self._workers)

    @property
    def aer_options(self) -> dict[str, Any]:
        """The options each worker's AerSimulator was built with."""
        return dict(self._aer_options)

    def worker_ids(self) -> list[str]:
        """The ids of the worker actors (their Ray actor names)."""
        return list(self._worker_names)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every worker has started (imported Aer, built its simulator)."""
        ray.get([w.worker_id.remote() for w in self._workers], timeout=timeout)

    def run(self, spec: JobSpec, *, deadline: float | None = None) -> BackendRun:
        """Split a job into chunks, send them to the workers and return at once.

        Args:
            spec: The job.
            deadline: UNIX time after which no further chunk of the job starts.

        Returns:
            The ref of the job's ``PrimitiveResult`` and the refs of its chunks.
        """
        chunks = plan(spec.pubs, spec.chunk_size)
        job_metadata = {"job_id": spec.job_id, "session_id": spec.session_id, "seed": spec.seed}
        refs = []
        placed = []
        for chunk in chunks:
            slot = next(self._counter) % len(self._workers)
            pubs = chunk_pubs(spec.pubs, chunk)
            keys = list(dict.fromkeys(pub.circuit_key for pub in pubs))
            request = ChunkRequest(
                kind=spec.kind,
                pubs=pubs,
                circuits=self._ship(slot, keys, spec)
                if spec.circuit_cache
                else {key: spec.circuits[key] for key in keys},
                use_cache=spec.circuit_cache,
                seed=chunk_seed(spec.seed, chunk.index, len(chunks)),
                run_options=spec.run_options,
                job_id=spec.job_id,
                chunk_index=chunk.index,
                deadline=deadline,
                job_metadata=job_metadata if len(chunks) == 1 else None,
            )
            refs.append(self._workers[slot].run_chunk.remote(request))
            placed.append(slot)
        if len(chunks) == 1:
            result = refs[0]
        else:
            # On a warm worker process (a fresh task process would import Qiskit first);
            # Ray resolves the chunk refs before the call starts.
            joiner = self._workers[placed[-1]]
            result = joiner.join.remote(spec.pubs, chunks, job_metadata, *refs)
        workers = tuple(self._worker_names[slot] for slot in placed)
        return BackendRun(result=result, chunk_refs=refs, workers=workers)

    def _ship(self, slot: int, keys: list[str], spec: JobSpec) -> dict[str, bytes]:
        """The circuits to send with a chunk for worker ``slot``: those it was not sent yet.

        A circuit goes to a worker once; later chunks name it by key. Every circuit
        sent is also put in the pool's store, where a worker that restarted or
        evicted it fetches it again.
        """
        sent = self._sent[slot]
        ship = {}
        for key in keys:
            if key in sent:
                sent.move_to_end(key)
                continue
            ship[key] = spec.circuits[key]
            sent[key] = None
            if key not in self._stored:
                self._store.put.remote(key, spec.circuits[key])
                self._stored[key] = None
        for table in (sent, self._stored):
            while len(table) > _TRACKED_KEYS:
                table.popitem(last=False)
        return ship

    def stop(self, run: BackendRun) -> None:
        """Stop a job: cancel its queued chunks and restart the workers running the rest.

        A restarted worker re-runs the chunks of other jobs it held (Ray retries
        them), so only the stopped job loses work.
        """
        _, pending = ray.wait(run.chunk_refs, num_returns=len(run.chunk_refs), timeout=0)
        pending_set = set(pending)
        for ref in pending:
            ray.cancel(ref)
        names = {
            name
            for ref, name in zip(run.chunk_refs, run.workers, strict=True)
            if ref in pending_set
        }
        for name in names:
            ray.kill(self._workers[self._worker_names.index(name)], no_restart=False)

    def close(self, timeout: float = 30.0) -> None:
        """Stop every worker. Idempotent; sessions still using the pool fail their jobs.

        Waits up to ``timeout`` seconds for workers still starting: Ray ignores a
        kill that reaches a worker process between its lease and its actor's
        start, which would leave that process holding its CPUs.
        """
        starting = [worker.worker_id.remote() for worker in self._workers]
        ray.wait(starting, num_returns=len(starting), timeout=timeout)
        for worker in self._workers:
            ray.kill(worker, no_restart=True)
        ray.kill(self._store, no_restart=True)

    def __enter__(self) -> AerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AerBackend {self._name!r} workers={len(self._workers)} id={self._id[:8]}>"


def _store_placement() -> Any:
    """Pin the circuit store to this process's node: the workers are owned by this
    process and share its fate, and a store that spilled to another node would come
    back empty after that node died."""
    node_id = ray.get_runtime_context().get_node_id()
    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def _warn_if_unplaceable(num_workers: int, num_cpus: float, num_gpus: float) -> None:
    """Log when the pool does not fit the free resources: its jobs would wait for them."""
    free = ray.available_resources()  # type: ignore[no-untyped-call]
    need_cpu, need_gpu = num_workers * num_cpus, num_workers * num_gpus
    if need_cpu > free.get("CPU", 0) or need_gpu > free.get("GPU", 0):
        logger.warning(
            "AerBackend needs %s CPUs and %s GPUs but Ray has %s CPUs and %s GPUs free; "
            "workers start (and jobs run) only when other pools close or nodes join.",
            need_cpu,
            need_gpu,
            free.get("CPU", 0),
            free.get("GPU", 0),
        )


def _check_aer_options(options: dict[str, Any], *, remote_gpu: bool) -> None:
    try:
        simulator = AerSimulator(**options)
    except AerError as exc:
        raise ValueError(f"invalid Aer option: {exc}") from exc
    device = simulator.options.device
    if not remote_gpu and device not in simulator.available_devices():
        raise ValueError(
            f"device={device!r} is not available here ({simulator.available_devices()}); "
            "give num_gpus_per_worker= so Ray places workers on GPU nodes."
        )
