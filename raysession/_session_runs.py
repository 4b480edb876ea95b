"""How a session actor runs the jobs it admitted: the FIFO pump, the mode's concurrency,
each job's run (on its granted worker or through the backend, with retries) and its
``max_execution_time``.

A base of :class:`~raysession._session_actor.SessionActor`, which owns the state and
the transitions (``_move``, ``_end``) these methods use.
"""

from __future__ import annotations

import asyncio
import time

from ._attempts import run_attempts
from ._failures import classify
from ._granted import follow_granted
from ._lifecycle import SessionState
from ._messages import JobStatus
from ._metrics import SessionMetrics
from ._session_records import JobRecord
from ._session_upkeep import SessionUpkeep
from .backends.base import Delivery, Grant, JobSpec
from .errors import ExecutionTimeoutError


class JobRuns(SessionUpkeep):
    """Starts queued jobs in order while the mode allows, and runs each to its end."""

    _metrics: SessionMetrics

    def _capacity(self) -> int:
        return 1 if self._config.mode == "dedicated" else max(1, self._backend.num_workers)

    def _pump(self) -> None:
        """Start queued jobs while the mode's concurrency allows."""
        while self._queue and self._num_running < self._capacity():
            job = next((job for job in self._queue if job.lane is None), None)
            if job is None:
                break  # the queued jobs wait in lanes, at their workers
            self._queue.remove(job)
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

    def _release_granted(self, spec: JobSpec, grant: Grant, *, stop: bool, lost: bool) -> None:
        """A granted job ended: its worker goes back (or is stopped, or was lost)."""
        self._backend.release(spec, grant, stop=stop, lost=lost)

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
                delivery = await follow_granted(job, grant, self._backend, self._release_granted)
                if delivery is not None:
                    return delivery
            return await self._backend.run_job(spec, deadline=deadline, record=job.run)

        return await run_attempts(job, attempt)

    async def _watch(self, job: JobRecord) -> None:
        assert job.task is not None and job.spec is not None
        limit = job.spec.max_execution_time
        try:  # (wait_for and shield only where there is a limit: they cost a task each)
            running = (
                job.task if limit is None else asyncio.wait_for(asyncio.shield(job.task), limit)
            )
            job.delivery = await running
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
