"""SessionActor: one session's lifecycle, FIFO queue, deadlines and job records."""

from __future__ import annotations

import asyncio
import time
import warnings

import ray

from . import _deadlines
from ._attempts import run_attempts
from ._durability import Durability, recovered_session
from ._failures import classify, record_final
from ._granted import follow_granted
from ._journal import Head
from ._lifecycle import SessionState, transition
from ._log import get_logger, ids
from ._messages import Admission, JobInfo, JobStatus, SessionDetails
from ._metrics import SessionMetrics
from ._queue_limits import JobQueue
from ._session_records import (
    JobRecord,
    SessionConfig,
    Timeline,
    delivery_of,
    prune,
    rejection,
)
from .backends.base import Ahead, Backend, Delivery, Grant, JobSpec
from .errors import ExecutionTimeoutError, RaySessionError

logger = get_logger(__name__)

# How long a granted job runs before it is journalled (see submit).
GRANTED_JOURNAL_DELAY_S = 0.05
# How long a status query waits for the completion of a job whose result the asker has.
_SETTLE_WAIT_S = 5.0


class _Ahead:
    """A job its submitter sent ahead to a worker (see ``Ahead``): taken once its
    session grants it that worker, else refused there, once."""

    def __init__(self, backend: Backend, ahead: Ahead | None, job_id: str) -> None:
        self._backend, self._ahead, self._job_id = backend, ahead, job_id
        self._open = ahead is not None
        self.worker_id = None if ahead is None else ahead.worker_id

    def take(self, grant: Grant) -> bool:
        """True if the job went ahead to ``grant``'s worker (and was not refused)."""
        if not self._open or grant.worker_id != self.worker_id:
            return False
        self._open = False
        return True

    def refuse(self) -> None:
        """Tell its worker to drop it, unless it was taken or refused already."""
        if self._open:
            assert self._ahead is not None
            self._open = False
            self._backend.refuse(self._ahead, self._job_id)


class SessionActor:
    """Owns one session: its state, FIFO queue, deadlines and job records.

    Concurrency: an async actor; every method runs on one event loop, so the state
    needs no locks. Ordering: jobs get sequence numbers in the order ``submit`` calls
    arrive (from any client) and start in that order; in ``dedicated`` mode one job
    runs at a time, in ``batch`` mode up to the backend's worker count. The queue is
    capped (``config.queue``, see :mod:`._queue_limits`): past a cap a submit is refused
    or waits for room, in arrival order. A job that fails for a transient reason runs
    again in its slot when it asked for retries (see :mod:`._attempts`).

    Data never passes through it. A job that can start at once on an idle worker is
    granted that worker in the answer to its submit: the submitter sends the job
    straight to it and owns the result, and this actor awaits only the small
    completion record. Other jobs it runs itself through the backend and keeps the refs
    of their results, which a caller's delivery task fetches and joins. Once the
    session is final and every result was handed over, it exits.

    Durability: every accepted job is journalled in Ray's GCS before its submitter hears
    of it, and every final job's record goes to storage (:mod:`._durability`). Ray
    restarts a dead actor (``max_restarts``) and retries the calls in flight; the new
    incarnation recovers the journal and runs the unfinished jobs again, once each, in
    their FIFO order, so ``submit`` is idempotent by job id.

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
        sent_ahead = _Ahead(self._backend, ahead, spec.job_id)
        try:
            return await self._admit(spec, seen_done, sent_ahead)
        finally:
            sent_ahead.refuse()  # unless it was taken

    async def _admit(self, spec: JobSpec, seen_done: list[str] | None, ahead: _Ahead) -> Admission:
        if not self._resumed.is_set():  # a restarted actor frees its last run's workers first
            await self._resumed.wait()
        await self._settle(seen_done)
        known = self._jobs.get(spec.job_id)
        if known is not None:  # a submit retried after a restart: accepted already
            return Admission(known.info(self._config.session_id))
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
        if self._queue or self._num_running >= self._capacity():
            self._queue.append(job)
            self._poke()
            await self._durable.accept(job)
            return Admission(job.info(self._config.session_id))
        deadline = self._begin(job)
        try:
            grant = await self._backend.reserve(spec, deadline, ahead.worker_id)
        except Exception:  # no grant: the job runs through the backend, which reports why
            logger.warning(
                "job %s: no worker reserved",
                job.job_id,
                exc_info=True,
                **ids(self._config.session_id, job.job_id),
            )
            grant = None
        if grant is None:
            await self._durable.accept(job)  # this actor runs it: it must survive the actor
        else:
            self._durable.accept(job, delay_s=GRANTED_JOURNAL_DELAY_S)
        if job.status.is_final:  # cancelled meanwhile
            if grant is not None:
                self._backend.release(spec, grant, stop=False)
            self._num_running -= 1
            self._pump()
            return Admission(job.info(self._config.session_id))
        if grant is not None:
            job.granted, job.ran_ahead = True, ahead.take(grant)
        self._launch(job, deadline, grant)
        return Admission(job.info(self._config.session_id), grant, job.ran_ahead)

    async def result(self, job_id: str, fetched: list[str] | None = None) -> Delivery:
        """Wait for a job; return where its result is (never the result itself), or the
        error its reader raises (see :func:`._session_records.delivery_of`).

        ``fetched``: jobs whose results the caller (a courier) has fetched since it last
        said so."""
        if fetched:
            await self.fetched(fetched)
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
        job = self._job(job_id)
        if finished and not job.status.is_final:
            try:
                await asyncio.wait_for(job.done.wait(), _SETTLE_WAIT_S)
            except TimeoutError:
                pass  # it runs again after its worker died: report it as running
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
        self._end(job, JobStatus.CANCELLED)
        return True

    async def update_tags(self, job_id: str, tags: list[str]) -> list[str]:
        """Replace a job's tags; returns them. Raises KeyError for an unknown job."""
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
        return list(self._jobs)

    async def jobs(self) -> list[JobInfo]:
        """Records of the jobs this session knows, in submission order."""
        return [job.info(self._config.session_id) for job in self._jobs.values()]

    async def details(self, seen_done: list[str] | None = None) -> SessionDetails:
        """The session's details, after the completion of the jobs in ``seen_done``."""
        await self._settle(seen_done)
        return self._details()

    async def close(self) -> SessionDetails:
        """Stop accepting jobs; queued and running jobs finish. Idempotent."""
        if self._state.is_accepting:
            busy = self._queue or self._num_running
            self._move(SessionState.DRAINING if busy else SessionState.CLOSED)
        return self._details()

    async def cancel(self) -> SessionDetails:
        """Stop accepting jobs and cancel queued ones; a running job finishes. Idempotent."""
        if not self._state.is_final:
            self._move(SessionState.CANCELLED)
            while self._queue:
                self._end(self._queue.popleft(), JobStatus.CANCELLED)
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
            self._times.closed_at = time.time()
            # Stored now, and again on exit with the last jobs' records.
            self._durable.later(self._durable.store_session(self._details, list(self._jobs)))
        self._durable.head_changed(self._head)
        logger.info("session %s is %s", self._config.session_id, state, **self._ids)
        self._poke()

    def _capacity(self) -> int:
        return 1 if self._config.mode == "dedicated" else max(1, self._backend.num_workers)

    def _pump(self) -> None:
        """Start queued jobs while the mode's concurrency allows."""
        while self._queue and self._num_running < self._capacity():
            job = self._queue.popleft()
            self._launch(job, self._begin(job), None)
        if self._state is SessionState.DRAINING and not self._queue and not self._num_running:
            self._move(SessionState.CLOSED)
        self._poke()

    def _begin(self, job: JobRecord) -> float | None:
        """Count the job as running; returns its deadline (UNIX time), if it has one."""
        now = time.time()
        if self._state in (SessionState.PENDING, SessionState.INACTIVE):
            self._move(SessionState.ACTIVE)
        if self._times.started_at is None:  # max_time starts: the journal's head says so
            self._times.started_at, self._times.started_mono = now, time.monotonic()
            self._durable.head_changed(self._head)
        job.status, job.running = JobStatus.RUNNING, now
        self._metrics.started(now - job.created)
        self._times.last_job_started = now
        self._num_running += 1
        assert job.spec is not None
        limit = job.spec.max_execution_time
        return None if limit is None else now + limit

    def _launch(self, job: JobRecord, deadline: float | None, grant: Grant | None) -> None:
        loop = asyncio.get_running_loop()
        job.task = loop.create_task(self._execute(job, deadline, grant))
        job.watcher = loop.create_task(self._watch(job))

    async def _execute(
        self, job: JobRecord, deadline: float | None, grant: Grant | None
    ) -> Delivery:
        """Run the job: on its granted worker (sent by the submitter) if it has one, else,
        or if that worker died or lacked a key, through the backend."""
        spec = job.spec
        assert spec is not None

        async def attempt(number: int) -> Delivery:  # retries never use the grant
            if number == 1 and grant is not None and job.granted:
                delivery = await follow_granted(job, grant, self._backend)
                if delivery is not None:
                    return delivery
            return await self._backend.run_job(spec, deadline=deadline, record=job.run)

        return await run_attempts(job, attempt)

    async def _watch(self, job: JobRecord) -> None:
        assert job.task is not None and job.spec is not None
        limit = job.spec.max_execution_time
        try:
            job.delivery = await asyncio.wait_for(asyncio.shield(job.task), limit)
        except TimeoutError:
            job.task.cancel()
            timeout = ExecutionTimeoutError(
                f"Job {job.job_id} ran longer than its max_execution_time of {limit} s "
                "and was stopped."
            )
            self._end(job, JobStatus.ERROR, timeout)
        except BaseException as exc:  # the job boundary: a failing job never takes the session
            self._end(job, *classify(exc, job.job_id))
        else:
            self._end(job, JobStatus.DONE)
        finally:
            self._num_running -= 1
            self._pump()

    def _end(self, job: JobRecord, status: JobStatus, error: RaySessionError | None = None) -> None:
        if job.status.is_final:
            return
        now = time.time()
        job.status, job.finished, job.spec = status, now, None
        if error is not None:
            error.session_id, error.job_id = self._config.session_id, job.job_id
            job.error = error
            logger.warning(
                "session %s job %s failed: %s",
                self._config.session_id,
                job.job_id,
                error,
                **ids(self._config.session_id, job.job_id),
            )
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

    # ----------------------------------------------------------------- journal

    def _recover(self) -> None:
        """Rebuild the session from its journal (a restarted actor): final jobs answer
        queries, accepted ones run again in FIFO order once the event loop runs."""
        state, self._sequence, times, self._jobs, queued = recovered_session(
            self._durable.recover(), self._state
        )
        self._state, self._times = state, times or self._times
        for job in queued:
            self._queue.append(job)
        self._resumed.clear()  # submits wait until the workers of the dead one are free
        self._ensure_watchdog()
        asyncio.get_running_loop().create_task(self._resume())

    async def _resume(self) -> None:
        """Free the workers and withdraw the lease requests of the dead incarnation, then
        run the queue (a request of this one must not be withdrawn with them)."""
        try:
            await self._backend.release_session(self._config.session_id)
        except Exception:
            logger.warning("session %s: workers of its last run not freed", self._config.session_id,
                           exc_info=True, **self._ids)  # fmt: skip
        finally:
            self._resumed.set()
            self._pump()

    # ----------------------------------------------------------------- deadlines

    def _poke(self) -> None:
        self._metrics.queue_depth(len(self._queue))
        if self._wake is not None:
            self._wake.set()
        self._queue.wake()  # a submit waiting for room looks again

    def _ensure_watchdog(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
            asyncio.get_running_loop().create_task(self._watch_deadlines())

    async def _watch_deadlines(self) -> None:
        assert self._wake is not None
        while not self._exiting:
            delay = self._apply_deadlines()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    def _apply_deadlines(self) -> float:
        """Apply every deadline that has passed; return seconds until the next one."""
        limits = self._config.limits()
        while not self._exiting:
            clocks = _deadlines.Clocks(
                state=self._state,
                busy=bool(self._queue or self._num_running),
                started=self._times.started_mono,
                last_completed=self._times.last_completed_mono,
                last_activity=self._times.last_activity,
                undelivered=self._state.is_final
                and any(not j.delivered for j in self._jobs.values()),
            )
            due, wait = _deadlines.due(clocks, limits, time.monotonic())
            if due is None:
                return wait
            if due is _deadlines.Due.EXPIRE:
                self._move(SessionState.EXPIRED)
                while self._queue:
                    job = self._queue.popleft()
                    self._end(
                        job, JobStatus.ERROR, rejection(self._state, self._config, job.job_id)
                    )
            elif due is _deadlines.Due.INACTIVE:
                self._move(SessionState.INACTIVE)
            elif due is _deadlines.Due.CLOSE_IDLE:
                logger.info("session %s closes itself: idle", self._config.session_id, **self._ids)
                self._move(SessionState.CLOSED)
            else:
                self._exiting = True
                asyncio.get_running_loop().create_task(self._exit())
        return _deadlines.MIN_LOOK_S

    async def _exit(self) -> None:
        # What handles may still ask for once the actor is gone: the session's final
        # state, and how each job that has no result ended.
        try:
            ended = [
                job.info(self._config.session_id)
                for job in self._jobs.values()
                if job.status is not JobStatus.DONE
            ]
            record_final(self._config.session_id, self._state, ended)
        except Exception:  # the GCS is unreachable: handles then report the actor as gone
            logger.warning(
                "session %s could not record its end", self._config.session_id, **self._ids
            )
        await self._durable.store_session(self._details, list(self._jobs))
        await self._durable.close()
        # Let the last replies leave the process before it goes.
        await asyncio.sleep(self._config.exit_grace_s)
        logger.info("session %s exits", self._config.session_id, **self._ids)
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

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
