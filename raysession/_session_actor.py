"""SessionActor: one session's lifecycle, FIFO queue, deadlines and job records."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import ray
from qiskit.primitives import PrimitiveResult, PubResult
from ray.exceptions import RayActorError, RayError, RayTaskError, TaskCancelledError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ._connect import NAMESPACE, actor_name
from ._lifecycle import SessionState, transition
from ._records import JobInfo, JobMetrics, JobStatus, SessionDetails
from .backends.base import Backend, BackendRun, JobSpec
from .errors import (
    BackendUnavailableError,
    ExecutionTimeoutError,
    JobCancelledError,
    JobFailedError,
    RaySessionError,
    SessionClosedError,
    SessionExpiredError,
)

logger = logging.getLogger(__name__)

Mode = Literal["dedicated", "batch"]

# Finished jobs whose records (not results) are kept for status queries.
_KEEP_RECORDS = 2_000
# Finished, delivered jobs whose result refs are kept so another handle can fetch them.
_KEEP_RESULTS = 100
# How long a job id announced by result() may wait for its submit() to arrive.
_SUBMIT_WAIT_S = 30.0


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
    """Seconds a final session waits for results nobody asked for before exiting."""


@dataclass
class _Job:
    job_id: str
    spec: JobSpec
    sequence: int
    created: float
    status: JobStatus = JobStatus.QUEUED
    running: float | None = None
    finished: float | None = None
    error: RaySessionError | None = None
    run: BackendRun | None = None
    task: asyncio.Task[Any] | None = None
    result_ref: ray.ObjectRef[PrimitiveResult[PubResult]] | None = None
    value: PrimitiveResult[PubResult] | None = None
    delivered: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def info(self, session_id: str) -> JobInfo:
        return JobInfo(
            job_id=self.job_id,
            session_id=session_id,
            status=self.status,
            error_message=None if self.error is None else self.error.message,
            metrics=JobMetrics(
                created=self.created,
                running=self.running,
                finished=self.finished,
                sequence=self.sequence,
                workers=() if self.run is None else tuple(self.run.workers),
                num_chunks=0 if self.run is None else self.run.num_chunks,
                retries=0 if self.run is None else self.run.retries,
            ),
        )


def session_actor_options(session_id: str) -> dict[str, Any]:
    """Ray options of a session actor: named, detached, CPU-free, never retried, and
    kept on the creating node (a soft affinity is ignored for an actor that needs no
    resources), so a session opened on the head does not die with a worker node."""
    return {
        "scheduling_strategy": NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False
        ),
        "name": actor_name("session", session_id),
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "num_cpus": 0,
        # FIFO comes from this actor's queue; a retried or restarted call could reorder jobs.
        "max_restarts": 0,
        "max_task_retries": 0,
        "max_concurrency": 10_000,
    }


class SessionActor:
    """Owns one session: its state, FIFO queue, deadlines and job records.

    Concurrency: an async actor; every method runs on one event loop, so the
    state needs no locks. ``result()`` calls wait on the loop without blocking.
    Ordering: jobs get sequence numbers in the order ``submit`` calls arrive
    (from any client) and start in that order; in ``dedicated`` mode one job
    runs at a time, in ``batch`` mode up to the backend's worker count.
    Called by: :class:`~raysession.Session` handles and job handles. It calls
    only its backend and never calls a handle.

    The actor holds specs, refs and small records; a result value passes
    through it once, on its way to the client's ``result()`` call. Once the
    session is final and every result has been handed over it exits.
    """

    def __init__(self, config: SessionConfig, backend: Backend) -> None:
        self._config = config
        self._backend = backend
        self._state = SessionState.PENDING
        self._jobs: dict[str, _Job] = {}
        self._queue: collections.deque[_Job] = collections.deque()
        self._num_running = 0
        self._sequence = 0
        self._rejected: dict[str, RaySessionError] = {}
        self._announced: dict[str, asyncio.Event] = {}
        self._created = time.time()
        self._last_activity = time.monotonic()
        self._started_at: float | None = None
        self._started_mono: float | None = None
        self._closed_at: float | None = None
        self._last_job_started: float | None = None
        self._last_job_completed: float | None = None
        self._last_completed_mono: float | None = None
        self._execution_s = 0.0
        self._wake: asyncio.Event | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._exiting = False
        self._finished_since_prune = 0

    # ----------------------------------------------------------------- protocol

    async def start(self) -> SessionDetails:
        """Start the deadline watchdog; returns the session's details."""
        self._ensure_watchdog()
        return self._details()

    async def submit(self, job_id: str, spec: JobSpec) -> JobInfo:
        """Accept a job into the queue.

        Raises:
            SessionClosedError: the session was closed or cancelled.
            SessionExpiredError: the session's max_time passed.
        """
        self._ensure_watchdog()
        if not self._state.is_accepting:
            error = self._rejection(job_id)
            self._remember_rejected(job_id, error)
            raise error
        job = _Job(job_id=job_id, spec=spec, sequence=self._sequence, created=time.time())
        self._sequence += 1
        self._jobs[job_id] = job
        self._queue.append(job)
        self._last_activity = time.monotonic()
        if job_id in self._announced:
            self._announced.pop(job_id).set()
        self._pump()
        return job.info(self._config.session_id)

    async def result(self, job_id: str) -> PrimitiveResult[PubResult]:
        """Wait for a job and return its result.

        Raises:
            JobFailedError: the job failed (``__cause__`` is the worker's error).
            JobCancelledError: the job was cancelled.
            SessionClosedError, SessionExpiredError: the job was never accepted.
            BackendUnavailableError: the workers died.
        """
        job = await self._find(job_id)
        await job.done.wait()
        try:
            if job.error is not None:
                raise job.error
            if job.status is JobStatus.CANCELLED:
                raise JobCancelledError(
                    f"Job {job_id} was cancelled; it has no result.",
                    session_id=self._config.session_id,
                    job_id=job_id,
                )
            value = job.value
            if value is None:
                if job.result_ref is None:
                    raise JobFailedError(f"Job {job_id} has no result any more.", job_id=job_id)
                value = await job.result_ref
            job.value = None
            return value
        finally:
            job.delivered = True
            self._poke()

    async def job_info(self, job_id: str) -> JobInfo:
        """Status, error message and metrics of one job.

        Raises:
            KeyError: the session has no job with that id.
        """
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"Session {self._config.session_id} has no job {job_id}")
        return job.info(self._config.session_id)

    async def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job; returns False if it had already finished."""
        job = self._jobs.get(job_id)
        if job is None or job.status.is_final:
            return False
        if job.status is JobStatus.QUEUED:
            self._queue.remove(job)
        elif job.task is not None:
            job.task.cancel()
        self._finish(job, JobStatus.CANCELLED)
        return True

    async def job_ids(self) -> list[str]:
        """Ids of the jobs this session knows, in submission order."""
        return list(self._jobs)

    async def details(self) -> SessionDetails:
        """The session's details."""
        return self._details()

    async def close(self) -> SessionDetails:
        """Stop accepting jobs; queued and running jobs finish. Idempotent."""
        if self._state.is_accepting:
            if self._queue or self._num_running:
                self._move(SessionState.DRAINING)
            else:
                self._move(SessionState.CLOSED)
        return self._details()

    async def cancel(self) -> SessionDetails:
        """Stop accepting jobs and cancel queued ones; a running job finishes. Idempotent."""
        if not self._state.is_final:
            self._move(SessionState.CANCELLED)
            while self._queue:
                self._finish(self._queue.popleft(), JobStatus.CANCELLED)
        return self._details()

    # ----------------------------------------------------------------- internals

    def _rejection(self, job_id: str) -> RaySessionError:
        sid = self._config.session_id
        if self._state is SessionState.EXPIRED:
            return SessionExpiredError(
                f"Session {sid} expired (max_time {self._config.max_time_s} s); "
                "create a new Session to submit more jobs.",
                session_id=sid,
                job_id=job_id,
            )
        return SessionClosedError(
            f"Session {sid} is closed; create a new Session to submit more jobs.",
            session_id=sid,
            job_id=job_id,
        )

    def _remember_rejected(self, job_id: str, error: RaySessionError) -> None:
        self._rejected[job_id] = error
        if len(self._rejected) > _KEEP_RECORDS:
            self._rejected.pop(next(iter(self._rejected)))
        if job_id in self._announced:
            self._announced.pop(job_id).set()

    async def _find(self, job_id: str) -> _Job:
        # A client sends submit() and result() back to back; result() may arrive first.
        if job_id not in self._jobs and job_id not in self._rejected:
            event = self._announced.setdefault(job_id, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), _SUBMIT_WAIT_S)
            except TimeoutError:
                self._announced.pop(job_id, None)
        if job_id in self._rejected:
            raise self._rejected[job_id]
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"Session {self._config.session_id} has no job {job_id}")
        return job

    def _move(self, state: SessionState) -> None:
        self._state = transition(self._state, state)
        if state.is_final:
            self._closed_at = time.time()
        logger.info("session %s is %s", self._config.session_id, state)
        self._poke()

    def _capacity(self) -> int:
        return 1 if self._config.mode == "dedicated" else max(1, self._backend.num_workers)

    def _pump(self) -> None:
        """Start queued jobs while the mode's concurrency allows."""
        while self._queue and self._num_running < self._capacity():
            self._start(self._queue.popleft())
        if self._state is SessionState.DRAINING and not self._queue and not self._num_running:
            self._move(SessionState.CLOSED)
        self._poke()

    def _start(self, job: _Job) -> None:
        now = time.time()
        if self._state in (SessionState.PENDING, SessionState.INACTIVE):
            self._move(SessionState.ACTIVE)
        if self._started_at is None:
            self._started_at, self._started_mono = now, time.monotonic()
        limit = job.spec.max_execution_time
        deadline = None if limit is None else now + limit
        job.run = BackendRun()
        job.task = asyncio.get_running_loop().create_task(
            self._backend.run(job.spec, deadline=deadline, record=job.run)
        )
        job.status, job.running = JobStatus.RUNNING, now
        self._last_job_started = now
        self._num_running += 1
        asyncio.get_running_loop().create_task(self._watch(job, limit))

    async def _watch(self, job: _Job, limit: float | None) -> None:
        assert job.task is not None
        try:
            # The backend returns the result's ref once the result is ready.
            job.result_ref = await asyncio.wait_for(asyncio.shield(job.task), limit)
        except TimeoutError:
            job.task.cancel()
            if not job.status.is_final:
                self._fail(
                    job,
                    ExecutionTimeoutError(
                        f"Job {job.job_id} ran longer than its max_execution_time "
                        f"of {limit} s and was stopped."
                    ),
                )
        except asyncio.CancelledError:
            if not job.status.is_final:
                self._finish(job, JobStatus.CANCELLED)
        except RaySessionError as exc:
            if not job.status.is_final:
                self._fail(job, _copy(exc), exc.__cause__)
        except RayTaskError as exc:
            if not job.status.is_final:
                cause = exc.cause
                if isinstance(cause, ExecutionTimeoutError):
                    self._fail(job, ExecutionTimeoutError(cause.message))
                elif isinstance(cause, TaskCancelledError):
                    self._finish(job, JobStatus.CANCELLED)
                elif isinstance(cause, RayError):
                    self._fail(job, _lost_workers(job.job_id, cause), cause)
                else:
                    self._fail(job, JobFailedError(f"Job {job.job_id} failed: {cause}"), cause)
        except (RayActorError, RayError) as exc:
            if not job.status.is_final:
                self._fail(job, _lost_workers(job.job_id, exc), exc)
        except Exception as exc:  # the job boundary: a failing job never takes the session down
            if not job.status.is_final:
                self._fail(job, JobFailedError(f"Job {job.job_id} could not run: {exc}"), exc)
        else:
            if not job.status.is_final:
                self._finish(job, JobStatus.DONE)
        finally:
            self._num_running -= 1
            self._pump()

    def _fail(self, job: _Job, error: RaySessionError, cause: BaseException | None = None) -> None:
        error.session_id, error.job_id = self._config.session_id, job.job_id
        if cause is not None:
            error.__cause__ = cause
        job.error = error
        logger.warning("session %s job %s failed: %s", self._config.session_id, job.job_id, error)
        self._finish(job, JobStatus.ERROR)

    def _finish(self, job: _Job, status: JobStatus) -> None:
        now = time.time()
        job.status, job.finished = status, now
        if job.running is not None:
            self._last_job_completed = now
            self._last_completed_mono = time.monotonic()
            self._execution_s += now - job.running
        self._last_activity = time.monotonic()
        job.done.set()
        self._prune()
        self._poke()

    def _prune(self) -> None:
        """Bound memory: forget old results, then old records (amortised, every 100 jobs)."""
        self._finished_since_prune += 1
        if self._finished_since_prune < 100:
            return
        self._finished_since_prune = 0
        finished = [j for j in self._jobs.values() if j.status.is_final and j.delivered]
        for old in finished[:-_KEEP_RESULTS]:
            old.result_ref, old.value, old.task = None, None, None
        for old in finished[: max(0, len(self._jobs) - _KEEP_RECORDS)]:
            del self._jobs[old.job_id]

    # ----------------------------------------------------------------- deadlines

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None:
            self._wake = asyncio.Event()
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_deadlines())

    async def _watch_deadlines(self) -> None:
        assert self._wake is not None
        while not self._exiting:
            delay = self._check_deadlines()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    def _check_deadlines(self) -> float:
        """Apply every deadline that has passed; return seconds until the next one."""
        now = time.monotonic()
        cfg = self._config
        waits = [3600.0]
        if self._started_mono is not None and self._state in (
            SessionState.ACTIVE,
            SessionState.INACTIVE,
            SessionState.DRAINING,
        ):
            left = self._started_mono + cfg.max_time_s - now
            if left <= 0:
                self._expire()
            else:
                waits.append(left)
        idle = not self._queue and not self._num_running
        if self._state is SessionState.ACTIVE and idle and self._last_completed_mono is not None:
            left = self._last_completed_mono + cfg.interactive_timeout_s - now
            if left <= 0:
                self._move(SessionState.INACTIVE)
            else:
                waits.append(left)
        if self._state in (SessionState.PENDING, SessionState.INACTIVE) and idle:
            left = self._last_activity + cfg.idle_timeout_s - now
            if left <= 0:
                logger.info("session %s closes itself after %s s idle", cfg.session_id, left)
                self._move(SessionState.CLOSED)
            else:
                waits.append(left)
        if self._state.is_final and not self._queue and not self._num_running:
            undelivered = [j for j in self._jobs.values() if not j.delivered]
            left = (self._last_activity + cfg.undelivered_grace_s - now) if undelivered else 0.0
            if left <= 0:
                self._exiting = True
                asyncio.get_running_loop().create_task(self._exit())
            else:
                waits.append(left)
        return max(0.01, min(waits))

    def _expire(self) -> None:
        self._move(SessionState.EXPIRED)
        while self._queue:
            job = self._queue.popleft()
            self._fail(job, self._rejection(job.job_id))

    async def _exit(self) -> None:
        # Let the last result() replies leave the process before it goes.
        await asyncio.sleep(self._config.exit_grace_s)
        logger.info("session %s exits", self._config.session_id)
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def _details(self) -> SessionDetails:
        cfg = self._config
        if cfg.mode == "batch":
            usage = self._execution_s
        elif self._started_at is None:
            usage = 0.0
        else:
            usage = (self._closed_at or time.time()) - self._started_at
        return SessionDetails(
            id=cfg.session_id,
            backend_name=self._backend.name,
            state=self._state,
            max_time=cfg.max_time_s,
            interactive_timeout=cfg.interactive_timeout_s,
            started_at=self._started_at,
            closed_at=self._closed_at,
            last_job_started=self._last_job_started,
            last_job_completed=self._last_job_completed,
            mode=cfg.mode,
            usage_time=usage,
            num_jobs=self._sequence,
        )


def _copy(error: RaySessionError) -> RaySessionError:
    """A fresh error of the same class and message (the original keeps its traceback)."""
    return type(error)(error.message)


def _lost_workers(job_id: str, exc: BaseException) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"Job {job_id} lost its workers ({type(exc).__name__}); "
        "the backend's worker pool is closed or its node died."
    )

