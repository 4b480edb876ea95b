"""The backend seam: the only surface a session actor calls, and the job spec it passes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard, runtime_checkable

import ray

from ._blob import as_blob
from ._lanes import LaneReport
from ._partition import Chunk, Kind, PubShape, PubSpec
from ._streaks import StreakReport, StreakTerms


@dataclass(frozen=True)
class JobSpec:
    """Everything a backend needs to run one job; built and validated by a primitive."""

    kind: Kind
    pubs: tuple[PubSpec, ...]
    circuits: dict[str, bytes]
    """Pickled circuits by content key: every key the PUBs name."""
    seed: int
    """The job's seed; chunks derive theirs from it."""
    chunk_size: int
    run_options: dict[str, Any] = field(default_factory=dict)
    max_execution_time: float | None = None
    circuit_cache: bool = True
    """Send each circuit to a worker once and refer to it by key afterwards."""
    job_id: str = ""
    session_id: str | None = None
    """The session (or hidden job-mode batch) the job runs in."""
    num_chunks: int = 1
    """How many chunks the job's plan has (a one-chunk job may take the fast path)."""
    aer_options: dict[str, Any] = field(default_factory=dict)
    """Aer simulator options of this job (a noise model, say), over the backend's own."""
    tags: tuple[str, ...] = ()
    """The job's tags (qiskit-ibm-runtime's ``job_tags``), kept in its session's record."""
    storage: str | None = None
    """Where its workers store the job's results (``RAYSESSION_STORAGE``); ``None``: nowhere."""
    input_bytes: int = 0
    """The job's input size: its pickled circuits, parameter values and observables, as
    counted once by the primitive (a session caps the bytes of its queued jobs)."""
    max_retries: int = 0
    """How many times the session runs the job again after a transient failure (a lost
    worker, a worker no node can place); ``options.raysession.max_retries``."""

    def __reduce__(self) -> tuple[Any, ...]:
        return as_blob(self)  # see ._blob: Ray's cloudpickle is slow on Qiskit's containers


@dataclass(frozen=True)
class JoinPlan:
    """What reassembling a split job's chunk results needs (see :func:`._partition.join`)."""

    shapes: list[PubShape]
    chunks: list[Chunk]


@dataclass(frozen=True)
class Delivery:
    """Where a finished job's result is: the refs of its chunk results, in chunk order.

    With ``join`` unset, one ref holds the job's whole ``PrimitiveResult``; otherwise
    the reader fetches every chunk's PUB results and joins them. The refs' owner (the
    session actor, or the submitter for a granted job) keeps the data; whoever reads it
    fetches it from where the workers put it.
    """

    refs: list[ray.ObjectRef[Any]]
    join: JoinPlan | None = None
    error: Exception | None = None
    """Set instead of refs when the job has no result: the error its reader raises. (An
    error raised by the session actor would reach a task depending on it as text only.)"""
    storage: str | None = None
    """Where the job's result is stored too: the reader's way when ``refs`` is empty (the
    session no longer keeps them) or their owner is gone (a granted job's submitter exited)."""


@dataclass
class BackendRun:
    """What a backend reports of a job while it runs (for the job's metrics).

    The per-chunk lists are in chunk order, one entry per chunk of the job's plan;
    a chunk that has not finished yet has an empty worker and 0.0 seconds.
    """

    num_chunks: int = 0
    workers: list[str] = field(default_factory=list)
    """Ids of the workers that ran the job's chunks, in the order they finished."""
    retries: int = 0
    """Chunks that ran again because their worker died."""
    chunk_seeds: list[int] = field(default_factory=list)
    """The seed each chunk ran with (the job's own seed for a one-chunk job)."""
    chunk_workers: list[str] = field(default_factory=list)
    """The worker that ran each chunk."""
    chunk_execution_s: list[float] = field(default_factory=list)
    """Seconds each chunk ran on its worker (the simulation, without queueing)."""
    chunk_places: list[str] = field(default_factory=list)
    """Where storage holds each chunk's result; ``""``: in its chunk file (see
    :func:`raysession.backends._store.write_chunk`)."""

    def plan(self, seeds: list[int]) -> None:
        """Start the per-chunk lists for a job of ``len(seeds)`` chunks."""
        self.num_chunks = len(seeds)
        self.chunk_seeds = list(seeds)
        self.chunk_workers = [""] * len(seeds)
        self.chunk_execution_s = [0.0] * len(seeds)
        self.chunk_places = [""] * len(seeds)

    def ran(self, index: int, worker_id: str, execution_s: float, place: str = "") -> None:
        """Chunk ``index`` ran on ``worker_id`` for ``execution_s`` seconds; its result
        is stored at ``place``."""
        self.workers.append(worker_id)
        self.chunk_workers[index] = worker_id
        self.chunk_execution_s[index] = execution_s
        self.chunk_places[index] = place


@runtime_checkable
class Grant(Protocol):
    """A worker reserved for one whole job, which the job's submitter runs on it directly.

    Made in the session actor by :meth:`Backend.reserve`, sent to the submitter in the
    answer to its submit, used there with :meth:`dispatch`. The actor follows the job at
    the worker (:meth:`Backend.follow`) and then calls :meth:`Backend.release`.
    """

    @property
    def worker_id(self) -> str:
        """The reserved worker."""
        ...

    def dispatch(self, spec: JobSpec) -> ray.ObjectRef[Any]:
        """Send the whole job to the worker; returns the ref of the job's
        :class:`~qiskit.primitives.PrimitiveResult`, owned by the caller."""
        ...

    def goes_ahead(self, spec: JobSpec) -> bool:
        """Whether the submitter's next job can go ahead to this grant's worker (it runs
        whole there, with this grant's Aer options)."""
        ...

    def to_lane(self) -> Grant:
        """The same worker's lane: a job given it waits there for its turn, after the
        jobs sent there before it (see ``._lanes``)."""
        ...

    def send_ahead(self, spec: JobSpec) -> ray.ObjectRef[Any]:
        """Send the submitter's *next* job, one :meth:`goes_ahead` takes, to this grant's
        worker, with its submit (see :class:`Ahead`); the worker runs it only if the
        session grants it that worker (the ref then resolves to its result; to ``None``
        if not)."""
        ...

    def run_streak(
        self, spec: JobSpec, streak_id: str, created: float
    ) -> tuple[ray.ObjectRef[bool], ray.ObjectRef[Any]]:
        """Send a job of the streak this grant opened (see
        :mod:`raysession.backends._streaks`) to the grant's worker, to run there at once;
        returns the refs of whether it ran in the streak (else the worker submitted it to
        the session) and of its result, owned by the caller."""
        ...


@dataclass(frozen=True)
class Ahead:
    """Passed with a submit: the job went ahead of its admission to the worker its
    submitter's last job ran on (:meth:`Grant.send_ahead`). If the session grants the
    job that same worker it runs there at once; else the session refuses it there
    (:meth:`Backend.refuse`) and the submit goes on as any other."""

    worker_id: str


def is_backend(value: object) -> TypeGuard[Backend]:
    """True if ``value`` is a backend: its class has every member of :class:`Backend`.

    Read from the class, not with ``isinstance(value, Backend)``: on Python 3.11 that
    evaluates each property, and ``AerBackend.num_workers`` asks Ray for the cluster's
    size (starting Ray if it is not running).
    """
    members = ("name", "backend_id", "num_workers", "run_job", "reserve", "completed", "release")
    return all(hasattr(type(value), member) for member in members)


@runtime_checkable
class ProvidesBackend(Protocol):
    """An object that gives the raysession backend its jobs run on: a backend object of a
    service or provider (:mod:`raysession.ibm`), or a user's own wrapper.

    :class:`~raysession.Session`, :class:`~raysession.Batch` and the primitives' ``mode=``
    accept such an object and run on what it gives.
    """

    def raysession_backend(self) -> Backend:
        """The backend jobs on this object run on."""
        ...


class BackendSource(Protocol):
    """Something that resolves backend names, such as a ``QiskitRuntimeService``."""

    def backend(self, name: str | None = None) -> ProvidesBackend:
        """The backend called ``name``; the source's default when ``name`` is ``None``."""
        ...


@runtime_checkable
class Backend(Protocol):
    """What a session actor needs from a backend.

    Implementations must pickle (a session actor gets its own copy) and must
    not call back into the session.
    """

    @property
    def name(self) -> str:
        """The backend's name, as reported in session details."""
        ...

    @property
    def backend_id(self) -> str:
        """A unique id of the backend instance; pickled copies share it."""
        ...

    @property
    def num_workers(self) -> int:
        """How many chunks the backend runs at once (a Batch runs this many jobs)."""
        ...

    async def run_job(
        self, spec: JobSpec, *, deadline: float | None = None, record: BackendRun | None = None
    ) -> Delivery:
        """Run a job; once it ran, return where its result is.

        Cancelling the coroutine stops the job (queued chunks are dropped and
        running ones interrupted).

        Args:
            spec: The job.
            deadline: UNIX time after which no further chunk of the job may start.
            record: Filled with the job's chunks, workers and retries as it runs.
        """
        ...

    async def reserve(
        self, spec: JobSpec, deadline: float | None, prefer: str | None = None
    ) -> Grant | None:
        """A worker for the whole of ``spec`` now, without waiting (``prefer`` if it is
        free), or ``None``."""
        ...

    async def follow(
        self, grant: Grant, job_id: str, ahead: bool, streak: StreakTerms | None = None
    ) -> Any:
        """Let a granted job run on its worker (once its submitter's chunk is there) and
        return its completion record once it ran, for :meth:`completed`. ``ahead``: its
        chunk went ahead of its admission. ``streak``: open a streak on the worker for the
        job's submitter first (see :mod:`raysession.backends._streaks`).

        Raises:
            RayActorError: the worker died.
            RayTaskError: the job failed (its cause says why).
        """
        ...

    async def streak_report(
        self, grant: Grant, streak_id: str, *, end: bool, wait: bool, client_id: str
    ) -> tuple[StreakReport, bool]:
        """What the streak on ``grant``'s worker ran since the last report (``end``:
        and end it; ``wait``: and wait for its running job), and whether a client other
        than ``client_id`` waits for a worker (the streak should then end).

        Raises:
            RayActorError: the worker died.
        """
        ...

    async def lane_report(self, grant: Grant, *, client_id: str) -> tuple[LaneReport, bool]:
        """What started and ended in the lane on ``grant``'s worker since the last report,
        and whether a client other than ``client_id`` waits for a worker.

        Raises:
            RayActorError: the worker died.
        """
        ...

    async def lane_drop(self, grant: Grant, outcomes: dict[str, Any]) -> dict[str, str]:
        """Take jobs back from the lane on ``grant``'s worker before they start, each
        with its outcome (an error its call raises, or ``"move"``): each ``"dropped"``,
        ``"running"`` or ``"ended"``.

        Raises:
            RayActorError: the worker died.
        """
        ...

    def others_wait(self, client_id: str) -> bool:
        """Whether a client other than ``client_id`` waits for a worker, as far as this
        process heard (no before it heard)."""
        ...

    def refuse(self, ahead: Ahead, job_id: str) -> None:
        """Tell the worker of a job sent ahead to return it unrun (the session did not
        grant the job that worker). Never raises (a dead worker needs nothing)."""
        ...

    def completed(self, grant: Grant, done: Any, record: BackendRun) -> bool:
        """Record a granted job's completion record; False if it did not run (the job
        must then run through :meth:`run`)."""
        ...

    def release(self, spec: JobSpec, grant: Grant, *, stop: bool, lost: bool = False) -> None:
        """Give a granted worker back once its job ended; ``stop`` kills it first (the job
        was cancelled or ran out of time while running); ``lost``: it died."""
        ...

    async def release_session(self, session_id: str) -> None:
        """Free every worker held, and withdraw every request made, for ``session_id``
        by an earlier incarnation of its session actor, which died (a restarted actor
        calls this before it runs anything)."""
        ...
