"""SessionActor: one session's lifecycle, FIFO queue, deadlines and job records."""

from __future__ import annotations

import asyncio
import time
import warnings

import ray

from ._durability import Durability
from ._granted import SentAhead
from ._journal import Head
from ._lifecycle import SessionState, transition
from ._log import get_logger, ids
from ._messages import Admission, JobInfo, JobStatus, SessionDetails
from ._metrics import SessionMetrics
from ._queue_limits import JobQueue
from ._session_lanes import SessionLanes
from ._session_records import (
    JobRecord,
    SessionConfig,
    Timeline,
    delivery_of,
    prune,
    rejection,
)
from .backends.base import Ahead, Backend, Delivery, JobSpec
from .errors import RaySessionError

logger = get_logger(__name__)

# How long a granted job runs before it is journalled (see submit).
GRANTED_JOURNAL_DELAY_S = 0.05
# How long a status query waits for the completion of a job whose result the asker has.
_SETTLE_WAIT_S = 5.0


class SessionActor(SessionLanes):
    """Owns one session: its state, FIFO queue, deadlines and job records.

    Concurrency: an async actor; every method runs on one event loop, so the state
    needs no locks. Ordering: jobs get sequence numbers in the order ``submit`` calls
    arrive (from any client) and start in that order; in ``dedicated`` mode one job
    runs at a time, in ``batch`` mode up to the backend's worker count. The queue is
    capped (``config.queue``, see :mod:`._queue_limits`): past a cap a submit is refused
    or waits for room, in arrival order. A job that fails for a transient reason runs
    again in its slot when it asked for retries (see :mod:`._attempts`).

    Data never passes through it. A job that can start at once on an idle worker is
    granted that worker in the answer to its submit (or, sent there ahead, runs there):
    the submitter owns the result and this actor hears only the completion record (see
    :mod:`._granted`). Other jobs it runs through the backend and keeps the refs of
    their results, which a caller's courier fetches. Once the session is final and
    every result was handed over, it exits (see :mod:`._session_upkeep`).

    Durability: every accepted job is journalled in Ray's GCS before its submitter hears
    of it, and every final job's record goes to storage (:mod:`._durability`). Ray
    restarts a dead actor (``max_restarts``) and retries the calls in flight; the new
    incarnation recovers the journal and runs the unfinished jobs again, once each, in
    their FIFO order, so ``submit`` is idempotent by job id.

    Streaks: a job granted the worker its submitter sent it ahead to (a submitter running
    one small job after another) opens a streak there: the submitter's next jobs go
    straight to the worker, and the actor hears of them in batches
    (:mod:`._session_streaks`). Every answer that reads the jobs hears of them first.

    Lanes: a Batch's job that would queue while its workers are busy may wait at one of
    them instead, sent there by its submitter; the actor hears what started and ended
    there in batches too (:mod:`._session_lanes`).

    Called by :class:`~raysession.Session` and job handles; calls only its backend.
    """

    def __init__(self, config: SessionConfig, backend: Backend) -> None:
        self._config = config
        self._backend = backend
        self._state = SessionState.PENDING
        self._jobs: dict[str, JobRecord] = {}
        self._queue = JobQueue(config.queue)  # a deque that counts bytes (back-pressure)
        self._num_running = 0
        self._sequence = 0
        self._times = Timeline()
        self._wake: asyncio.Event | None = None
        self._exiting = False
        self._finished_since_prune = 0
        self._durable = Durability(config)  # the journal and the stored records
        self._metrics = SessionMetrics(config.session_id, backend.name, config.mode)
        self._ids = ids(config.session_id)  # on every log record (see ._log)
        self._streak = None
        self._last_of = {}
        self._lanes = {}
        self._resumed = asyncio.Event()
        self._resumed.set()
        with warnings.catch_warnings():  # Ray's property reads a deprecated one inside
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = ray.get_runtime_context().was_current_actor_reconstructed
        if restarted:
            self._recover()

    # ----------------------------------------------------------------- protocol

    async def start(self) -> SessionDetails:
        """Start the deadline watchdog; returns the session's details."""
        self._ensure_watchdog()
        return self._details()

    async def submit(
        self, spec: JobSpec, seen_done: list[str] | None = None, ahead: Ahead | None = None
    ) -> Admission:
        """Accept a job; start it at once if the mode allows, granting it a worker when
        one is idle (the submitter then sends it there, see :mod:`._granted`).

        ``seen_done`` lists granted jobs whose results the submitter has read: their
        completion records, on their way from the workers, are awaited before this job
        is placed. ``ahead``: the submitter sent the job to a worker already; it runs
        there if that is the worker it is granted, else the worker is told to drop it.

        Raises:
            SessionClosedError: the session was closed or cancelled.
            SessionExpiredError: the session's max_time passed.
            QueueFullError: the job would queue past a cap of the session's queue, and
                no room came within the session's ``queue_wait``.
        """
        sent_ahead = SentAhead(self._backend, ahead, spec.job_id)
        try:
            return await self._admit(spec, seen_done, sent_ahead)
        finally:
            sent_ahead.refuse()  # unless it was taken

    async def _admit(
        self, spec: JobSpec, seen_done: list[str] | None, ahead: SentAhead
    ) -> Admission:
        if not self._resumed.is_set():  # a restarted actor frees its last run's workers first
            await self._resumed.wait()
        await self._settle(seen_done)
        await self._end_streak()  # a streak's jobs come before this one
        known = self._jobs.get(spec.job_id)
        if known is not None:  # a submit retried after a restart: accepted already
            return Admission(known.created)
        if not self._state.is_accepting:
            raise rejection(self._state, self._config, spec.job_id)
        if self._queue or self._num_running >= self._capacity():
            ahead.refuse()  # it queues: free the worker it went ahead to, at once
        await self._queue.wait_for_room(
            spec.input_bytes,
            lambda: (
                not self._state.is_accepting
                or not (self._queue or self._num_running >= self._capacity())
                or self._queue.fits(spec.input_bytes)
            ),
            session_id=self._config.session_id,
            job_id=spec.job_id,
        )
        if not self._state.is_accepting:  # it ended while the job waited for room
            raise rejection(self._state, self._config, spec.job_id)
        job = JobRecord(spec.job_id, spec, self._sequence, time.time())
        self._sequence += 1
        self._jobs[job.job_id] = job
        self._metrics.submitted()
        self._times.last_activity = time.monotonic()
        # An accepted job survives a restart: it is journalled before its submitter hears
        # of it, unless it is granted a worker. Its submitter then runs it and owns its
        # result whatever happens here, and it is journalled only if it is still running
        # after GRANTED_JOURNAL_DELAY_S (most granted jobs are done by then: no GCS write).
        queues = self._queue or self._num_running >= self._capacity()
        if self._lane_idle() or (queues and not self._lane_slot_free()):
            lane = self._to_lane(job)  # a Batch's job may wait at a busy worker instead
            self._queue.append(job)
            self._poke()
            await self._durable.accept(job)
            return Admission(job.created, lane)
        deadline = self._begin(job)
        try:
            grant = await self._backend.reserve(spec, deadline, ahead.worker_id)
        except Exception:  # no grant: the job runs through the backend, which reports why
            logger.warning("job %s: no worker reserved", job.job_id, exc_info=True,
                           **ids(self._config.session_id, job.job_id))  # fmt: skip
            grant = None
        if grant is None:
            await self._durable.accept(job)  # this actor runs it: it must survive the actor
        else:
            self._durable.accept_later(job, GRANTED_JOURNAL_DELAY_S)
        if job.status.is_final:  # cancelled meanwhile
            if grant is not None:
                self._backend.release(spec, grant, stop=False)
            self._num_running -= 1
            self._pump()
            return Admission(job.created)
        streak = None
        if grant is not None:
            job.granted, job.ran_ahead = True, ahead.take(grant)
            self._open_lane(job, grant)
            if job.ran_ahead and self._may_open_streak(job):
                streak = job.streak = self._open_streak(job, grant)
        self._launch(job, deadline, grant)
        return Admission(job.created, grant, job.ran_ahead, streak)

    async def result(self, job_id: str, fetched: list[str] | None = None) -> Delivery:
        """Wait for a job; return where its result is (never the result itself), or the
        error its reader raises (see :func:`._session_records.delivery_of`).

        ``fetched``: jobs whose results the caller (a courier) has fetched since it last
        said so."""
        if fetched:
            await self.fetched(fetched)
        await self._sync_streak()  # (a lane's job is heard of within LANE_PULL_S anyway)
        job = self._jobs.get(job_id)
        if job is not None:
            await job.done.wait()
        return delivery_of(job, job_id, self._config.session_id, self._config.storage)

    async def fetched(self, job_ids: list[str]) -> None:
        """A courier fetched these jobs' results: the actor need not keep them alive."""
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is not None and not job.delivered:
                job.delivered = True
                self._poke()

    async def job_info(self, job_id: str, finished: bool = False) -> JobInfo:
        """Status, error message and metrics of one job.

        Args:
            finished: The caller saw the job's result (of a granted job): wait a moment
                for the completion record, which may still be on its way here.

        Raises:
            KeyError: the session has no job with that id.
        """
        await self._sync_runs()
        job = self._job(job_id)
        if finished and not job.status.is_final:
            try:
                await asyncio.wait_for(job.done.wait(), _SETTLE_WAIT_S)
            except TimeoutError:
                pass  # it runs again after its worker died: report it as running
        return job.info(self._config.session_id)

    async def cancel_job(self, job_id: str) -> bool:
        """Cancel a queued or running job; returns False if it had already finished."""
        await self._sync_runs()
        if self._streak is not None and job_id in self._streak.jobs:
            await self._end_streak()  # its running job is followed as any: it can stop
        job = self._jobs.get(job_id)
        if job is not None and job.lane is not None and not job.status.is_final:
            lane_cancelled = await self._cancel_lane_job(job)
            if lane_cancelled is not None:
                return lane_cancelled
        if job is None or job.status.is_final:
            return False
        if job.status is JobStatus.QUEUED:
            self._queue.remove(job)
        elif job.task is not None:
            job.task.cancel()
        self._end(job, JobStatus.CANCELLED)
        return True

    async def update_tags(self, job_id: str, tags: list[str]) -> list[str]:
        """Replace a job's tags; returns them. Raises KeyError for an unknown job."""
        await self._sync_runs()
        job = self._job(job_id)
        tags = job.retag(tags)
        if job.status.is_final:
            self._durable.ended(job)  # the stored record and the journal get the new tags
        return tags

    async def backend(self) -> Backend:
        """The backend the session's jobs run on."""
        return self._backend

    async def job_ids(self) -> list[str]:
        """Ids of the jobs this session knows, in submission order."""
        await self._sync_runs()
        return list(self._jobs)

    async def jobs(self) -> list[JobInfo]:
        """Records of the jobs this session knows, in submission order."""
        await self._sync_runs()
        return [job.info(self._config.session_id) for job in self._jobs.values()]

    async def details(self, seen_done: list[str] | None = None) -> SessionDetails:
        """The session's details, after the completion of the jobs in ``seen_done``."""
        await self._settle(seen_done)
        await self._sync_runs()
        return self._details()

    async def close(self) -> SessionDetails:
        """Stop accepting jobs; queued and running jobs finish. Idempotent."""
        await self._end_streak()
        if self._state.is_accepting:
            busy = self._queue or self._num_running
            self._move(SessionState.DRAINING if busy else SessionState.CLOSED)
        return self._details()

    async def cancel(self) -> SessionDetails:
        """Stop accepting jobs and cancel queued ones; a running job finishes. Idempotent."""
        await self._end_streak()
        if not self._state.is_final:
            self._move(SessionState.CANCELLED)
            await self._end_lane_jobs(self._cancelled_error, JobStatus.CANCELLED)
            for job in [job for job in self._queue if job.lane is None]:
                self._queue.remove(job)
                self._end(job, JobStatus.CANCELLED)
        return self._details()

    # ----------------------------------------------------------------- running jobs

    def _job(self, job_id: str) -> JobRecord:
        job = self._jobs.get(job_id)
        if job is None:
            raise KeyError(f"Session {self._config.session_id} has no job {job_id}")
        return job

    async def _settle(self, seen_done: list[str] | None) -> None:
        """Wait a moment for the completion of granted jobs whose results a caller has
        read: their records come from their workers at the same time."""
        watchers = []
        for job_id in seen_done or ():
            job = self._jobs.get(job_id)
            if job is not None and job.watcher is not None and not job.watcher.done():
                watchers.append(job.watcher)
        if watchers:
            await asyncio.wait(watchers, timeout=_SETTLE_WAIT_S)

    def _move(self, state: SessionState) -> None:
        self._state = transition(self._state, state)
        if state.is_final:
            if self._streak is not None:  # it expired: the streak takes no more jobs
                asyncio.get_running_loop().create_task(self._end_streak())
            self._times.closed_at = time.time()
            # Stored now, and again on exit with the last jobs' records.
            self._durable.later(self._durable.store_session(self._details, list(self._jobs)))
        self._durable.head_changed(self._head)
        logger.info("session %s is %s", self._config.session_id, state, **self._ids)
        self._poke()

    def _end(
        self,
        job: JobRecord,
        status: JobStatus,
        error: RaySessionError | None = None,
        *,
        finished: float | None = None,
    ) -> None:
        """Make a job final (``finished``: when it ended, if not now)."""
        if job.status.is_final:
            return
        now = time.time() if finished is None else finished
        job.status, job.finished, job.spec = status, now, None
        if error is not None:
            error.session_id, error.job_id = self._config.session_id, job.job_id
            job.error = error
            logger.warning("session %s job %s failed: %s", self._config.session_id, job.job_id,
                           error, **ids(self._config.session_id, job.job_id))  # fmt: skip
        if status is not JobStatus.DONE or (job.rerun and self._config.storage):
            job.delivered = True  # the error travels in the answer; a rerun's result is stored
        if job.running is not None:
            self._times.last_job_completed = now
            self._times.last_completed_mono = time.monotonic()
            self._times.execution_s += now - job.running
        self._times.last_activity = time.monotonic()
        job.done.set()
        self._metrics.ended(status, None if job.running is None else now - job.running)
        # The job's journal entry carries its times; the head is rewritten on state changes
        # and here, every 100 jobs (a GCS write costs the actor about 0.3 ms of CPU).
        self._durable.ended(job)
        self._finished_since_prune += 1
        if self._finished_since_prune >= 100:  # amortised: every 100 finished jobs
            self._finished_since_prune = 0
            self._durable.forget(prune(self._jobs))
            self._durable.head_changed(self._head)
        self._poke()

    # ----------------------------------------------------------------- internals

    def _poke(self) -> None:
        self._metrics.queue_depth(len(self._queue))
        if self._wake is not None:
            self._wake.set()
        self._queue.wake()  # a submit waiting for room looks again

    def _head(self) -> Head:
        return self._times.head(self._state, self._sequence)

    def _details(self) -> SessionDetails:
        details = self._times.details(
            self._config, self._backend.name, self._state, self._sequence, self._jobs.values()
        )
        queue = self._queue
        return details.model_copy(
            update={"queued_bytes": queue.num_bytes, "num_waiting": queue.num_waiting}
        )
