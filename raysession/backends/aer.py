"""AerBackend: a description of an Aer simulator (options, worker shape, cap) run on the pool,
and a Qiskit ``BackendV2`` whose target lists what that simulator runs."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import pickle
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from qiskit import QuantumCircuit
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target
from qiskit_aer import AerSimulator
from qiskit_aer.aererror import AerError
from qiskit_aer.noise import NoiseModel
from ray.exceptions import RayActorError

from .._connect import ensure_ray
from .._env import env_count
from .._log import get_logger, ids
from ..errors import BackendUnavailableError, WorkerLostError
from . import _pool_client as client
from ._aer_worker import ChunkDone, ChunkRequest, grant_key, whole_request
from ._blob import as_blob
from ._lanes import LaneJob, LaneReport
from ._partition import PubShape, PubSpec, chunk_pubs, chunk_seed, plan
from ._pool_protocol import Lease, Shape
from ._streaks import StreakJob, StreakReport, StreakTerms
from .base import Ahead, BackendRun, Delivery, Grant, JobSpec, JoinPlan

logger = get_logger(__name__)

__all__ = ["AerBackend"]

RETRIES_ENV = "RAYSESSION_MAX_CHUNK_RETRIES"
# Aer options up to this many pickled bytes travel with every grant; larger ones (a
# device's noise model) only to a worker that this session has not sent them to.
_INLINE_SIM_BYTES = 16 * 1024


def max_chunk_retries() -> int:
    """How often a chunk whose worker died runs again (``RAYSESSION_MAX_CHUNK_RETRIES``, 3)."""
    return env_count(RETRIES_ENV, 3)


@dataclass(frozen=True)
class AerGrant:
    """A leased worker reserved for one whole job, sent to the job's submitter.

    The submitter sends the job straight to the worker (:meth:`dispatch`) and owns the
    result; the session actor follows it there (:meth:`AerBackend.follow`) and hears only
    the small completion record.
    """

    lease: Lease
    sim_key: str
    sim_options: bytes | None
    """The pickled Aer options, unless the worker holds them already."""
    deadline: float | None
    plain: bool = True
    """The job had no Aer options of its own: ``sim_key`` is the backend's."""
    lane: bool = False
    """The worker's lane, not the worker: the job waits there for its turn (see ._lanes)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return as_blob(self)  # see ._blob: it travels in every granted job's admission

    @property
    def worker_id(self) -> str:
        """The reserved worker."""
        return self.lease.worker_id

    def dispatch(self, spec: JobSpec) -> ray.ObjectRef[Any]:
        """Run the whole job on the worker; returns the result's ref, owned by the caller.

        Every circuit of the job travels with it (the worker unpickles only those it
        does not hold), so the worker never lacks one.
        """
        return self._send(spec, ahead=False)

    def goes_ahead(self, spec: JobSpec) -> bool:
        """Whether :meth:`send_ahead` takes ``spec``: not a job that would be split or
        has Aer options of its own (a noise model); those are sent once granted."""
        return spec.num_chunks == 1 and not spec.aer_options and self.plain

    def to_lane(self) -> AerGrant:
        """The same worker's lane (see :mod:`._lanes`)."""
        return dataclasses.replace(self, lane=True)

    def send_ahead(self, spec: JobSpec) -> ray.ObjectRef[Any]:
        """Send the next job of this grant's submitter (one :meth:`goes_ahead` takes) to
        the same worker before its admission; it waits there for the session's verdict."""
        return self._send(spec, ahead=True)

    def run_streak(
        self, spec: JobSpec, streak_id: str, created: float
    ) -> tuple[ray.ObjectRef[bool], ray.ObjectRef[Any]]:
        """Send a job of the streak this grant opened (one :meth:`goes_ahead` takes) to
        the worker, to run there at once (see :mod:`._streaks`); returns the refs of
        whether it ran in the streak and of its result, owned by the caller."""
        worker = client.handle(self.worker_id)
        ran, result = worker.run_streak.remote(StreakJob(spec, streak_id, created))
        return ran, result

    def _send(self, spec: JobSpec, *, ahead: bool) -> ray.ObjectRef[Any]:
        request = whole_request(spec, self.sim_key, self.sim_options, ahead=ahead)
        worker = client.handle(self.worker_id)
        if self.lane and not ahead:
            job = LaneJob(request, spec.session_id or "")
            lane_ref: ray.ObjectRef[Any] = worker.run_lane.remote(job)
            return lane_ref
        ref: ray.ObjectRef[Any] = worker.run_granted.remote(request)
        return ref


def _keyed(aer_options: dict[str, Any]) -> tuple[str, bytes]:
    data = pickle.dumps(aer_options, protocol=pickle.HIGHEST_PROTOCOL)
    return hashlib.blake2b(data, digest_size=16).hexdigest(), data


# Runs circuits for AerBackend.run (BackendV2's), set by raysession.ibm, which owns the
# conversion to a Qiskit Result and the V1 job; the core does not import it.
_circuit_runner: Callable[[AerBackend, Any, dict[str, Any]], Any] | None = None


def set_circuit_runner(runner: Callable[[AerBackend, Any, dict[str, Any]], Any]) -> None:
    """Who runs circuits for :meth:`AerBackend.run` (:mod:`raysession.ibm` on import)."""
    global _circuit_runner
    _circuit_runner = runner


class AerBackend(BackendV2):  # type: ignore[misc]
    """An Aer simulator that runs on the Ray cluster's shared worker pool.

    It is a Qiskit ``BackendV2``: its :attr:`target` lists exactly the instructions its
    simulator runs (Aer's for the method, or a device's, see :meth:`from_backend`), so
    ``transpile(circuits, backend)`` and ``generate_preset_pass_manager(backend=backend)``
    work against it, and its :meth:`run` runs circuits as ``AerSimulator.run`` does
    (a Qiskit ``Result``), so libraries built on ``BackendV2`` (qiskit-experiments, say)
    run on it. Sessions run jobs through :meth:`run_job`.

    A backend is a description, cheap to build and to pickle: Aer options, the
    resource shape of a worker and an optional cap. It starts nothing. The cluster
    has one pool of Aer workers (see :func:`raysession.pool_status`), shared by every
    backend, session and driver: workers of a shape start when jobs need them, up
    to what the cluster can place, and are released after
    ``RAYSESSION_WORKER_IDLE_S`` seconds without work (default 60). Backends with
    different Aer options share the workers of their shape; a worker builds one
    simulator per option set, and a noise model travels to it once.

    A job is split into chunks (``options.raysession.chunk_size`` of the primitives); each
    chunk runs on an idle worker and the results are reassembled in order. A worker
    that dies is replaced and its chunks run again, at most
    ``RAYSESSION_MAX_CHUNK_RETRIES`` times (default 3).

    Args:
        num_workers: The cap, under its old name: same as ``max_workers``.
        num_cpus_per_worker: CPUs each worker uses (Aer's OpenMP threads). Workers
            are placed so that no node runs more worker CPUs than it has.
        num_gpus_per_worker: GPUs each worker holds; set with ``device="GPU"``.
        max_workers: Most workers this backend's jobs use at once. Default: no cap
            beyond what the cluster can place.
        name: The backend's name, as reported by sessions.
        **aer_options: Options of :class:`qiskit_aer.AerSimulator` (``method``,
            ``device``, ``precision``, ``noise_model``, ...).

    Raises:
        ValueError: an Aer option is unknown or invalid, or a count is not positive.

    Example:
        >>> backend = AerBackend(method="stabilizer", max_workers=2)
        >>> backend.shape
        Shape(num_cpus=1.0, num_gpus=0.0)
    """

    def __init__(
        self,
        num_workers: int | None = None,
        *,
        num_cpus_per_worker: float = 1,
        num_gpus_per_worker: float = 0,
        max_workers: int | None = None,
        name: str = "aer_simulator",
        **aer_options: Any,
    ) -> None:
        if num_workers is not None and max_workers is not None and num_workers != max_workers:
            raise ValueError("give the cap once: num_workers is the old name of max_workers")
        cap = max_workers if max_workers is not None else num_workers
        if cap is not None and cap <= 0:
            raise ValueError(f"num_workers / max_workers must be positive, not {cap}")
        if num_cpus_per_worker <= 0 or num_gpus_per_worker < 0:
            raise ValueError(
                "num_cpus_per_worker must be positive and num_gpus_per_worker not negative"
            )
        _check_aer_options(aer_options, remote_gpu=num_gpus_per_worker > 0)
        self._init(
            uuid.uuid4().hex,
            name,
            dict(aer_options),
            Shape(float(num_cpus_per_worker), float(num_gpus_per_worker)),
            cap,
        )

    @classmethod
    def from_backend(
        cls,
        backend: BackendV2,
        *,
        name: str | None = None,
        num_cpus_per_worker: float = 1,
        num_gpus_per_worker: float = 0,
        max_workers: int | None = None,
        **aer_options: Any,
    ) -> AerBackend:
        """A simulator of ``backend`` (any Qiskit ``BackendV2``, such as a fake device or
        ``GenericBackendV2``), as :meth:`qiskit_aer.AerSimulator.from_backend` builds one.

        Its target is the device's (coupling map, basis gates, durations), so circuits
        must be ISA for it: transpile them with
        ``generate_preset_pass_manager(backend=simulator, optimization_level=1)``. Jobs
        whose circuits are not are refused before they are queued. Unless ``noise_model``
        is given, the device's noise (``NoiseModel.from_backend``) is simulated.

        Args:
            backend: The device to simulate.
            name: The simulator's name. Default: ``"aer_simulator_from(<device name>)"``.
            num_cpus_per_worker, num_gpus_per_worker, max_workers: As for :class:`AerBackend`.
            **aer_options: Further :class:`qiskit_aer.AerSimulator` options.

        Raises:
            TypeError: ``backend`` is not a ``BackendV2``.
            ValueError: an Aer option is unknown or invalid.

        Example:
            >>> from qiskit.providers.fake_provider import GenericBackendV2
            >>> AerBackend.from_backend(GenericBackendV2(5, seed=1)).num_qubits
            5
        """
        if not isinstance(backend, BackendV2):
            raise TypeError(
                f"from_backend() takes a Qiskit BackendV2, not {type(backend).__name__}"
            )
        if "noise_model" not in aer_options:
            noise = NoiseModel.from_backend(backend)
            if not noise.is_ideal():
                aer_options["noise_model"] = noise
        built = cls(
            name=name or f"aer_simulator_from({backend.name})",
            num_cpus_per_worker=num_cpus_per_worker,
            num_gpus_per_worker=num_gpus_per_worker,
            max_workers=max_workers,
            **aer_options,
        )
        built._target, built._is_device = backend.target, True
        return built

    def _init(
        self,
        backend_id: str,
        name: str,
        aer_options: dict[str, Any],
        shape: Shape,
        cap: int | None,
        target: Target | None = None,
    ) -> None:
        self._id, self._name, self._aer_options = backend_id, name, aer_options
        BackendV2.__init__(self, name=name, description=f"Aer simulator {name} on Ray")
        self._options.update_options(**aer_options)
        self._shape, self._cap = shape, cap
        # A device's target (from_backend); else None until Aer's is built on first read.
        self._target, self._is_device = target, target is not None
        self._sim: tuple[str, bytes] | None = None
        self._capacity: int | None = None

    @classmethod
    def _restore(
        cls,
        backend_id: str,
        name: str,
        aer_options: dict[str, Any],
        shape: Shape,
        cap: int | None,
        target: Target | None = None,
    ) -> AerBackend:
        self = cls.__new__(cls)
        self._init(backend_id, name, aer_options, shape, cap, target)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # Aer's own target is rebuilt from the options; a device's travels with it.
        device_target = self._target if self.is_device else None
        state = (self._id, self._name, self._aer_options, self._shape, self._cap, device_target)
        return (AerBackend._restore, state)

    # ----------------------------------------------------------------- reading

    @property
    def name(self) -> str:
        """The backend's name."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        # BackendV2.__init__ assigns it.
        self._name = value

    @property
    def target(self) -> Target:
        """The transpiler target: exactly what this backend's simulator runs (Aer's
        instructions for its method, all-to-all), or the simulated device's target."""
        if self._target is None:
            self._target = aer_target(self._aer_options)
        return self._target

    @property
    def is_device(self) -> bool:
        """True for a simulated device (:meth:`from_backend`): its jobs' circuits must be
        ISA for :attr:`target`; a plain simulator runs any circuit Aer runs."""
        return self._is_device

    @property
    def max_circuits(self) -> None:
        """No limit on the circuits of one job."""
        return None

    @classmethod
    def _default_options(cls) -> Options:
        # AerSimulator.run's defaults; other run options are passed to run().
        return Options(shots=1024, memory=False, seed_simulator=None)

    def set_options(self, **fields: Any) -> None:
        """Not supported: a backend is an immutable description.

        Raises:
            TypeError: always; build another with ``AerBackend(**options)``.
        """
        raise TypeError(
            "AerBackend options are fixed at construction; build another backend with "
            "AerBackend(**aer_options) or give per-job options to the primitives."
        )

    @property
    def backend_id(self) -> str:
        """A unique id of this description; pickled copies share it."""
        return self._id

    @property
    def shape(self) -> Shape:
        """The resources of one worker."""
        return self._shape

    @property
    def max_workers(self) -> int | None:
        """The cap on workers running this backend's chunks at once, if any."""
        return self._cap

    @property
    def num_workers(self) -> int:
        """Most chunks of this backend that can run at once: the cap, or what the
        connected cluster's CPUs (GPUs for a GPU shape) hold."""
        if self._cap is not None:
            return self._cap
        if self._capacity is None:
            ensure_ray()
            total = ray.cluster_resources()  # type: ignore[no-untyped-call]
            fits = total.get("CPU", 1.0) // self._shape.num_cpus
            if self._shape.num_gpus:
                fits = min(fits, total.get("GPU", 0.0) // self._shape.num_gpus)
            self._capacity = max(1, int(fits))
        return self._capacity

    @property
    def aer_options(self) -> dict[str, Any]:
        """The options of the workers' AerSimulator for this backend."""
        return dict(self._aer_options)

    def _sim_options(self, spec: JobSpec) -> tuple[str, bytes]:
        """(content key, pickled bytes) of the Aer options ``spec`` runs with: the
        backend's, with the job's own (``spec.aer_options``: a noise model) over them."""
        if spec.aer_options:
            return _keyed({**self._aer_options, **spec.aer_options})
        if self._sim is None:
            self._sim = _keyed(self._aer_options)
        return self._sim

    # ----------------------------------------------------------------- running

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any) -> Any:
        """Run circuits and count their measurement outcomes, as ``AerSimulator.run`` does
        (``BackendV2.run``), in job mode on the shared pool.

        Args:
            run_input: A circuit or a list of circuits, with measurements into classical
                registers.
            **options: ``AerSimulator.run``'s options: ``shots`` (default 1024, as Aer),
                ``memory``, ``seed_simulator``, ``parameter_binds`` and Aer options;
                others (``meas_level``, ...) are ignored, as Aer ignores them.

        Returns:
            A Qiskit ``JobV1`` whose ``result()`` is a :class:`~qiskit.result.Result`
            (:class:`raysession.RuntimeJob`).

        Raises:
            ValueError, TypeError: a circuit or an option is invalid, or a circuit is
                not ISA for a simulated device (raised here, before anything is queued).
        """
        if _circuit_runner is None:
            raise RuntimeError("AerBackend.run needs the raysession package imported")
        return _circuit_runner(self, run_input, options)

    async def run_job(
        self, spec: JobSpec, *, deadline: float | None = None, record: BackendRun | None = None
    ) -> Delivery:
        """Run a job on the pool; once every chunk ran, return where the results are.

        The results stay where the workers put them: a one-chunk job's ref holds its
        ``PrimitiveResult``, a split job's refs the PUB results of each chunk, which the
        reader joins (:func:`._partition.join`).

        Chunks are leased workers one at a time, fairly with other sessions; a chunk
        whose worker dies runs again on another, up to ``RAYSESSION_MAX_CHUNK_RETRIES``
        times. When a chunk fails, the job's chunks still waiting for a worker are
        dropped (running ones finish and their results are discarded). Cancelling the
        coroutine stops the job: workers still running its chunks are stopped (the
        pool replaces them on demand).

        Args:
            spec: The job.
            deadline: UNIX time after which no further chunk of the job starts.
            record: Filled with the job's chunk count, workers and retries as it runs.

        Raises:
            WorkerLostError: a chunk crashed its worker more often than allowed.
            BackendUnavailableError: no worker of the backend's shape can be placed.
            RayTaskError: a chunk failed (its cause is the worker's error).
        """
        record = record if record is not None else BackendRun()
        chunks = plan(spec.pubs, spec.chunk_size)
        seeds = [chunk_seed(spec.seed, chunk.index, len(chunks)) for chunk in chunks]
        record.plan(seeds)
        single = len(chunks) == 1
        running: set[int] = set()
        tasks = [
            asyncio.ensure_future(
                self._run_chunk(
                    spec,
                    chunk_pubs(spec.pubs, chunk),
                    chunk.index,
                    seeds[chunk.index],
                    deadline,
                    single,
                    record,
                    running,
                )
            )
            for chunk in chunks
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        failed = next((t for t in tasks if t.done() and t.exception() is not None), None)
        if failed is not None:
            for index, task in enumerate(tasks):
                task.add_done_callback(_discard_outcome)
                if not task.done() and index not in running:
                    task.cancel()  # waiting for a worker: drop it, no worker is stopped
            raise failed.exception()  # type: ignore[misc]
        refs = [task.result() for task in tasks]
        if single:
            return Delivery(refs)
        shapes = [PubShape.of(pub) for pub in spec.pubs]
        return Delivery(refs, JoinPlan(shapes, chunks))

    async def _run_chunk(
        self,
        spec: JobSpec,
        pubs: list[PubSpec],
        index: int,
        seed: int,
        deadline: float | None,
        whole: bool,
        record: BackendRun,
        running: set[int],
    ) -> ray.ObjectRef[Any]:
        # A whole job whose granted worker died arrives here with that crash counted.
        crashes, limit = (record.retries if whole else 0), max_chunk_retries()
        if crashes > limit:  # its granted worker died, and no rerun is allowed
            raise _worker_lost(spec, index, crashes, limit)
        sim_key, sim_bytes = self._sim_options(spec)
        keys = list(dict.fromkeys(pub.circuit_key for pub in pubs))
        while True:
            lease = await self._lease(spec)
            keep, hold = True, whole
            try:
                resend: set[str] = set()
                while True:
                    ship = client.to_ship(lease.worker_id, [*keys, sim_key], resend)
                    request = ChunkRequest(
                        kind=spec.kind,
                        pubs=pubs,
                        seed=seed,
                        run_options=spec.run_options,
                        job_id=spec.job_id,
                        chunk_index=index,
                        sim_key=sim_key,
                        sim_options=sim_bytes if sim_key in ship else None,
                        circuits={k: spec.circuits[k] for k in keys}
                        if not spec.circuit_cache
                        else {k: spec.circuits[k] for k in keys if k in ship},
                        use_cache=spec.circuit_cache,
                        deadline=deadline,
                        whole=whole,
                        storage=spec.storage,
                    )
                    done_ref, result_ref = client.handle(lease.worker_id).run_chunk.remote(request)
                    running.add(index)
                    try:
                        done: ChunkDone = await done_ref
                    finally:
                        running.discard(index)
                    if not done.missing:
                        record.ran(index, lease.worker_id, done.execution_s, done.place)
                        chunk_ref: ray.ObjectRef[Any] = result_ref
                        return chunk_ref
                    resend = set(done.missing)
            except asyncio.CancelledError:
                # Stopped mid-chunk: only killing the worker interrupts Aer.
                keep = False
                ray.kill(client.handle(lease.worker_id), no_restart=True)
                raise
            except RayActorError as exc:
                keep = False
                client.forget_worker(lease.worker_id)
                crashes += 1
                if crashes > limit:
                    raise _worker_lost(spec, index, crashes, limit) from exc
                record.retries += 1
                logger.warning(
                    "job %s chunk %d lost worker %s; running it again (%d of %d)",
                    spec.job_id,
                    index,
                    lease.worker_id,
                    crashes,
                    limit,
                    **ids(spec.session_id, spec.job_id),
                )
            finally:
                if keep and hold:
                    client.hold(spec.session_id or spec.job_id, self._id, lease, self._shape)
                elif keep:
                    client.give_back(lease)

    async def _lease(self, spec: JobSpec) -> Lease:
        try:
            return await client.acquire(
                spec.session_id or spec.job_id, self._shape, self._id, self._cap
            )
        except BackendUnavailableError as exc:
            exc.session_id, exc.job_id = spec.session_id, spec.job_id
            raise

    async def reserve(
        self, spec: JobSpec, deadline: float | None, prefer: str | None = None
    ) -> AerGrant | None:
        """An idle worker for the whole of ``spec``, now or never: the worker held for the
        session since its last job, else one the pool has idle (``prefer`` if it is; no
        waiting)."""
        if spec.num_chunks != 1:
            return None
        lease = await client.try_acquire(
            spec.session_id or spec.job_id, self._shape, self._id, self._cap, prefer
        )
        if lease is None:
            return None
        sim_key, sim_bytes = self._sim_options(spec)
        inline = len(sim_bytes) <= _INLINE_SIM_BYTES
        ship = inline or sim_key in client.to_ship(lease.worker_id, [sim_key], set())
        plain = not spec.aer_options
        return AerGrant(lease, sim_key, sim_bytes if ship else None, deadline, plain)

    async def follow(
        self, grant: Grant, job_id: str, ahead: bool, streak: StreakTerms | None = None
    ) -> ChunkDone:
        """Let the granted job run on its worker and wait until it ran there; ``refused``
        if it never came (see :class:`._aer_worker._Granted`). ``streak``: open a streak
        on the worker for the job's submitter first (see :mod:`._streaks`).

        Raises:
            RayActorError: the worker died.
            RayTaskError: the job failed (its cause says why).
        """
        assert isinstance(grant, AerGrant)
        worker = client.handle(grant.worker_id)
        key = grant_key(job_id, ahead)
        done: ChunkDone = await worker.follow.remote(key, grant.deadline, streak, grant.sim_key)
        return done

    async def streak_report(
        self, grant: Grant, streak_id: str, *, end: bool, wait: bool, client_id: str
    ) -> tuple[StreakReport, bool]:
        """The report of the streak open on ``grant``'s worker (see
        :meth:`._streaks.Streaks.report`), and whether a client other than ``client_id``
        (the session) waits for a worker of this backend's shape: the streak should then
        give its worker back.

        Raises:
            RayActorError: the worker died.
        """
        assert isinstance(grant, AerGrant)
        worker = client.handle(grant.worker_id)
        asked = worker.streak_report.remote(streak_id, end, wait)
        waiting = False
        if not end:
            try:
                waiting = await client.pool().others_wait.remote(self._shape, client_id)
            except RayActorError:
                waiting = False  # the pool exited while idle: nobody waits
        report: StreakReport = await asked
        return report, waiting

    async def lane_report(self, grant: Grant, *, client_id: str) -> tuple[LaneReport, bool]:
        """What started and ended in the lane on ``grant``'s worker since the last report
        (see :mod:`._lanes`), and whether a client other than ``client_id`` waits for a
        worker of this backend's shape (the lane's waiting jobs should then move).

        Raises:
            RayActorError: the worker died.
        """
        assert isinstance(grant, AerGrant)
        asked = client.handle(grant.worker_id).lane_report.remote()
        report: LaneReport = await asked
        return report, self.others_wait(client_id)

    async def lane_drop(self, grant: Grant, outcomes: dict[str, Any]) -> dict[str, str]:
        """Take jobs back from the lane on ``grant``'s worker before they start, each with
        its outcome (see :meth:`._lanes.Lanes.drop`).

        Raises:
            RayActorError: the worker died.
        """
        assert isinstance(grant, AerGrant)
        worker = client.handle(grant.worker_id)
        answers: dict[str, str] = await worker.lane_drop.remote(outcomes)
        return answers

    def others_wait(self, client_id: str) -> bool:
        """Whether a client other than ``client_id`` waits for a worker of this backend's
        shape, as the pool last said (no before its first answer; asked again every
        quarter second while this is called)."""
        return client.others_said_to_wait(self._shape, client_id)

    def refuse(self, ahead: Ahead, job_id: str) -> None:
        """Tell the worker of a job sent ahead to return it unrun."""
        try:
            client.handle(ahead.worker_id).refuse.remote(grant_key(job_id, True))
        except RayActorError:
            pass  # the worker is gone: the job sent ahead went with it

    def completed(self, grant: Grant, done: Any, record: BackendRun) -> bool:
        """Note a granted job's :class:`ChunkDone`; False if it did not run (its worker
        lacked a key, or its chunk never came)."""
        assert isinstance(done, ChunkDone)
        if done.refused:
            return False
        if done.missing:
            client.forget_keys(grant.worker_id, done.missing)
            return False
        record.plan([done.seed])
        record.ran(0, grant.worker_id, done.execution_s, done.place)
        return True

    def release(self, spec: JobSpec, grant: Grant, *, stop: bool, lost: bool = False) -> None:
        """Hold the worker for the session's next job, or stop it (the pool replaces it)."""
        assert isinstance(grant, AerGrant)
        if stop:
            ray.kill(client.handle(grant.worker_id), no_restart=True)
        if stop or lost:
            client.forget_worker(grant.worker_id)
            return
        client.hold(spec.session_id or spec.job_id, self._id, grant.lease, self._shape)

    async def release_session(self, session_id: str) -> None:
        """Free the workers and lease requests of a dead incarnation of a session actor;
        returns once the pool did."""
        await client.pool().release_client.remote(session_id)

    def warm_up(self, timeout: float = 300.0) -> int:
        """Start the workers this backend can use now, instead of with the first job.

        They are released like any other when idle. Returns how many run.
        """
        for attempt in range(2):
            try:
                warmed: int = ray.get(
                    client.pool().warm.remote(self._shape, self.num_workers, timeout),
                    timeout=timeout + 30,
                )
                return warmed
            except RayActorError:
                # The pool exited while idle since this process last used it.
                client.reset_pool()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close this process's job-mode batches on this backend. Idempotent.

        The pool's workers are not this backend's: they are released when idle.
        """
        for hook in _close_hooks.pop(self._id, []):
            hook()

    def __enter__(self) -> AerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        cap = "" if self._cap is None else f" max_workers={self._cap}"
        return f"<AerBackend {self._name!r} {self._shape.resources()}{cap} id={self._id[:8]}>"


def on_close(backend_id: str, hook: Callable[[], None]) -> None:
    """Call ``hook`` when the backend with ``backend_id`` is closed in this process."""
    _close_hooks.setdefault(backend_id, []).append(hook)


_close_hooks: dict[str, list[Callable[[], None]]] = {}


def _worker_lost(spec: JobSpec, index: int, crashes: int, limit: int) -> WorkerLostError:
    return WorkerLostError(
        f"Job {spec.job_id}: the simulation of chunk {index} crashed its worker {crashes} "
        f"times ({RETRIES_ENV}={limit}); the job is failed, the session goes on. Check the "
        "circuit and the simulator's memory, or set options.raysession.max_retries to run "
        "the job again.",
        session_id=spec.session_id,
        job_id=spec.job_id,
    )


def _discard_outcome(task: asyncio.Future[Any]) -> None:
    """Mark the outcome of a chunk of an already failed job as seen."""
    if not task.cancelled():
        task.exception()


def aer_target(aer_options: dict[str, Any]) -> Target:
    """The target of an Aer simulator with these options: the instructions its method runs
    (Aer's own list), on any qubits."""
    target: Target = AerSimulator(**aer_options).target
    return target


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
