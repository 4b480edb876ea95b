"""What a session actor holds: its configuration, its job records, its Ray options, and
the errors its answers carry. Plain data and pure functions; the actor is
:mod:`._session_actor`."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from . import _deadlines
from ._attempts import settled_attempts
from ._connect import NAMESPACE, actor_name
from ._env import env_switch
from ._failures import recorded_error
from ._journal import Head
from ._lifecycle import SessionState
from ._messages import JobAttempt, JobInfo, JobMetrics, JobStatus, SessionDetails, SessionOwner
from ._queue_limits import QueueLimits
from .backends._streaks import StreakTerms
from .backends.base import BackendRun, Delivery, JobSpec
from .errors import (
    JobCancelledError,
    RaySessionError,
    ResultUnavailableError,
    SessionClosedError,
    SessionExpiredError,
)

Mode = Literal["dedicated", "batch"]

LANES_ENV = "RAYSESSION_LANES"
"""``off`` keeps a Batch's queued jobs at its session actor (see ._session_lanes)."""


def lanes_enabled() -> bool:
    """Whether a new Batch gives its queued jobs lanes (``RAYSESSION_LANES``, default on).

    Raises:
        ValueError: the variable is set to something other than on or off.
    """
    return env_switch(LANES_ENV, True)


# Finished jobs whose records (not results) are kept for status queries.
KEEP_RECORDS = 2_000
# Finished, delivered jobs whose result refs are kept so another handle can fetch them.
KEEP_RESULTS = 100
# Times a session actor that died is restarted (recovering its journal) before it stays dead.
MAX_RESTARTS = 10


@dataclass(frozen=True)
class SessionConfig:
    """How a session actor behaves; fixed at creation."""

    session_id: str
    mode: Mode
    max_time_s: int
    interactive_timeout_s: float
    idle_timeout_s: float
    exit_grace_s: float = 0.5
    """Seconds between handing over the last result and exiting."""
    undelivered_grace_s: float = 60.0
    """Seconds a final session waits for results nobody fetched before exiting."""
    storage: str | None = None
    """Where job records and results are stored (``RAYSESSION_STORAGE`` of the process
    that opened the session); ``None``: nowhere."""
    queue: QueueLimits = field(default_factory=QueueLimits)
    """Caps on the queued jobs and their input bytes, and how long a submit waits for room."""
    owner: SessionOwner | None = None
    """Who opened the session (recorded by the handle that created it)."""
    created_at: float = field(default_factory=time.time)
    """When the handle created the session (UNIX seconds)."""
    lanes: bool = True
    """A Batch queues its small jobs at its workers (``RAYSESSION_LANES``, see ._session_lanes)."""

    def limits(self) -> _deadlines.Limits:
        return _deadlines.Limits(
            self.max_time_s, self.interactive_timeout_s, self.idle_timeout_s,
            self.undelivered_grace_s,
        )  # fmt: skip


@dataclass
class JobRecord:
    """One job as its session actor keeps it: a record, refs, never result data."""

    job_id: str
    spec: JobSpec | None
    sequence: int
    created: float
    status: JobStatus = JobStatus.QUEUED
    running: float | None = None
    finished: float | None = None
    error: RaySessionError | None = None
    run: BackendRun = field(default_factory=BackendRun)
    task: asyncio.Task[Delivery] | None = None
    watcher: asyncio.Task[None] | None = None
    granted: bool = False
    """It was granted a worker at once: its submitter sends it there (see ._granted)."""
    ran_ahead: bool = False
    """Granted the worker its submitter had sent it to ahead of its admission."""
    delivery: Delivery | None = None
    delivered: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    seed: int | None = None
    tags: tuple[str, ...] = ()
    kind: str = ""
    """What the record keeps of its spec once the job is final (the spec is dropped)."""
    journaled: asyncio.Future[bool] | None = None
    """The write of the job's acceptance to the journal (its end is written after it)."""
    final_info: JobInfo | None = None
    """A final job recovered from the journal by a restarted actor: its record as it was."""
    rerun: bool = False
    """Run again by a restarted actor: its submitter may hold the first run's result and
    never fetch this one's, so a stored result counts as delivered."""
    attempts: list[JobAttempt] = field(default_factory=list)
    """Each run of the job (one, plus one per retry); see :mod:`._attempts`."""

    planned_chunks: int = 0
    """The chunks the job's plan has (its metrics' count until its run starts)."""
    streak: StreakTerms | None = None
    """The streak the job opened on its granted worker (see :mod:`._session_streaks`)."""
    lane: str | None = None
    """The worker whose lane the job waits or runs in (see :mod:`._session_lanes`)."""
    moving: bool = False
    """Its session is taking it back from its lane."""

    def __post_init__(self) -> None:
        if self.spec is not None:
            self.seed, self.tags, self.kind = self.spec.seed, self.spec.tags, self.spec.kind
            self.planned_chunks = self.spec.num_chunks

    @classmethod
    def recovered(cls, info: JobInfo) -> JobRecord:
        """The record of a job that was final when the actor's last incarnation died."""
        job = cls(info.job_id, None, info.metrics.sequence, info.metrics.created, info.status)
        job.final_info, job.delivered = info, True
        job.running, job.finished = info.metrics.running, info.metrics.finished
        job.seed, job.tags, job.kind = info.metrics.seed, info.tags, info.primitive_id
        if info.status is not JobStatus.DONE:
            job.error = recorded_error(info) if info.error_type else None
        job.done.set()
        return job

    def info(self, session_id: str) -> JobInfo:
        if self.final_info is not None:
            return self.final_info.model_copy(update={"tags": self.tags})
        run = self.run
        return JobInfo(
            job_id=self.job_id,
            session_id=session_id,
            status=self.status,
            error_message=None if self.error is None else self.error.message,
            error_type=None if self.error is None else type(self.error).__name__,
            metrics=JobMetrics(
                created=self.created,
                running=self.running,
                finished=self.finished,
                sequence=self.sequence,
                workers=tuple(run.workers),
                num_chunks=run.num_chunks or self.planned_chunks,
                retries=run.retries,
                seed=self.seed,
                chunk_seeds=tuple(run.chunk_seeds),
                chunk_workers=tuple(run.chunk_workers),
                chunk_execution_s=tuple(run.chunk_execution_s),
                attempts=settled_attempts(self),
            ),
            tags=self.tags,
            primitive_id=self.kind,
        )

    def retag(self, tags: list[str]) -> list[str]:
        """Replace the job's tags (already checked by the handle); returns them."""
        self.tags = tuple(tags)
        return list(self.tags)


def session_actor_options(session_id: str) -> dict[str, Any]:
    """Ray options of a session actor: named, detached, CPU-free, restarted when it dies,
    and kept on the creating node (a soft affinity is ignored for an actor that needs no
    resources), so a session opened on the head does not die with a worker node."""
    return {
        "scheduling_strategy": NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False
        ),
        "name": actor_name("session", session_id),
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "num_cpus": 0,
        # A killed or crashed actor comes back and recovers its journal (see ._journal);
        # calls in flight are retried on it. ``submit`` is idempotent (by job id), and FIFO
        # comes from the recovered queue's sequence numbers, not from the calls' order.
        "max_restarts": MAX_RESTARTS,
        "max_task_retries": -1,
        "max_concurrency": 10_000,
    }


@dataclass
class Timeline:
    """When things happened in a session: UNIX times for its details, monotonic
    readings for its deadlines."""

    last_activity: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    started_mono: float | None = None
    closed_at: float | None = None
    last_job_started: float | None = None
    last_job_completed: float | None = None
    last_completed_mono: float | None = None
    execution_s: float = 0.0
    """Seconds jobs ran, summed (a Batch's usage)."""

    def head(self, state: SessionState, sequence: int) -> Head:
        """The session's journal head (UNIX times only)."""
        return Head(
            state, sequence, self.started_at, self.closed_at, self.last_job_started,
            self.last_job_completed, self.execution_s,
        )  # fmt: skip

    @classmethod
    def recovered(cls, head: Head) -> Timeline:
        """The timeline of a restarted actor: monotonic readings rebuilt from UNIX times,
        so ``max_time`` counts from the first job's start whatever restarted meanwhile."""
        now, mono = time.time(), time.monotonic()

        def monotonic(unix: float | None) -> float | None:
            return None if unix is None else mono - (now - unix)

        return cls(
            last_activity=mono,
            started_at=head.started_at,
            started_mono=monotonic(head.started_at),
            closed_at=head.closed_at,
            last_job_started=head.last_job_started,
            last_job_completed=head.last_job_completed,
            last_completed_mono=monotonic(head.last_job_completed),
            execution_s=head.execution_s,
        )

    def details(
        self,
        config: SessionConfig,
        backend_name: str,
        state: SessionState,
        num_jobs: int,
        jobs: Iterable[JobRecord] = (),
    ) -> SessionDetails:
        """The session's details now; ``jobs`` are the records kept, counted by status
        (a pruned record was final, so it counts as finished)."""
        num_queued = num_running = 0
        for job in jobs:
            if job.status is JobStatus.QUEUED:
                num_queued += 1
            elif job.status is JobStatus.RUNNING:
                num_running += 1
        if config.mode == "batch":
            usage = self.execution_s
        elif self.started_at is None:
            usage = 0.0
        else:
            usage = (self.closed_at or time.time()) - self.started_at
        return SessionDetails(
            id=config.session_id,
            backend_name=backend_name,
            state=state,
            max_time=config.max_time_s,
            interactive_timeout=config.interactive_timeout_s,
            started_at=self.started_at,
            closed_at=self.closed_at,
            last_job_started=self.last_job_started,
            last_job_completed=self.last_job_completed,
            mode=config.mode,
            usage_time=usage,
            num_jobs=num_jobs,
            storage=config.storage,
            created_at=config.created_at,
            num_queued=num_queued,
            num_running=num_running,
            num_finished=num_jobs - num_queued - num_running,
            owner=config.owner,
        )


def rejection(state: SessionState, config: SessionConfig, job_id: str) -> RaySessionError:
    """The error for a job a session in ``state`` does not accept (or expired)."""
    sid = config.session_id
    if state is SessionState.EXPIRED:
        return SessionExpiredError(
            f"Session {sid} expired (max_time {config.max_time_s} s); "
            "create a new Session to submit more jobs.",
            session_id=sid,
            job_id=job_id,
        )
    return SessionClosedError(
        f"Session {sid} is closed; create a new Session to submit more jobs.",
        session_id=sid,
        job_id=job_id,
    )


def delivery_of(
    job: JobRecord | None, job_id: str, session_id: str, storage: str | None = None
) -> Delivery:
    """Where a finished job's result is, or the error its reader raises:
    :class:`JobFailedError` (``__cause__`` is the worker's error),
    :class:`JobCancelledError`, :class:`BackendUnavailableError`, or
    :class:`ResultUnavailableError` for an unknown job or a pruned result that was not
    stored. A DONE job's delivery names ``storage`` too: the reader's way to the result
    when the refs are pruned or their owner (a granted job's submitter) is gone."""
    error: RaySessionError | None = None
    if job is None:
        error = ResultUnavailableError(
            f"Session {session_id} has no job {job_id} (any more).",
            session_id=session_id,
            job_id=job_id,
        )
    elif job.error is not None:
        error = job.error
    elif job.status is JobStatus.CANCELLED:
        error = JobCancelledError(
            f"Job {job_id} was cancelled; it has no result.", session_id=session_id, job_id=job_id
        )
    elif job.delivery is not None and not job.delivery.refs and storage is None:
        error = ResultUnavailableError(
            f"Job {job_id}'s result belongs to the process that submitted it (the job ran "
            "on a worker granted to that process) and RAYSESSION_STORAGE is off, so no "
            "copy was stored; read it from the handle that submitted it, or turn storage on.",
            session_id=session_id,
            job_id=job_id,
        )
    elif job.delivery is None and storage is None:
        error = ResultUnavailableError(
            f"Job {job_id}'s result was pruned: session {session_id} keeps the last "
            f"{KEEP_RESULTS} results for other processes and stores none "
            "(RAYSESSION_STORAGE is off); read results from the handle that submitted them.",
            session_id=session_id,
            job_id=job_id,
        )
    if error is not None:
        return Delivery([], error=error)
    assert job is not None
    if job.delivery is None:
        return Delivery([], storage=storage)
    return dataclasses.replace(job.delivery, storage=storage)


def prune(jobs: dict[str, JobRecord]) -> list[JobRecord]:
    """Bound a session's memory: drop the result refs of all but the last
    :data:`KEEP_RESULTS` delivered jobs, then the records beyond :data:`KEEP_RECORDS`.
    A pruned job's result asked for by another process is read from storage (or, with
    ``RAYSESSION_STORAGE=off``, raises :class:`ResultUnavailableError`); its submitter owns
    its result and is not affected. Returns the records dropped."""
    finished = [job for job in jobs.values() if job.status.is_final and job.delivered]
    for old in finished[:-KEEP_RESULTS]:
        old.delivery, old.task = None, None
    dropped = finished[: max(0, len(jobs) - KEEP_RECORDS)]
    for old in dropped:
        del jobs[old.job_id]
    return dropped
