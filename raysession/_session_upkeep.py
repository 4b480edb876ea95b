"""What a session actor does on its own: deadlines, its exit, its recovery after a restart.

A base of :class:`~raysession._session_actor.SessionActor`, which owns the state these
methods read and the transitions they call (``_move``, ``_end``, ``_pump``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import ray

from . import _deadlines
from ._durability import Durability, recovered_session
from ._failures import record_final
from ._journal import Head
from ._lifecycle import SessionState
from ._log import get_logger
from ._messages import JobStatus, SessionDetails
from ._queue_limits import JobQueue
from ._session_records import JobRecord, SessionConfig, Timeline, rejection
from .backends.base import Backend
from .errors import RaySessionError

logger = get_logger(__name__)


class SessionUpkeep:
    """The deadline watchdog, the exit once the session is final and its results are
    handed over, and the rebuild from the journal after a restart."""

    _config: SessionConfig
    _backend: Backend
    _state: SessionState
    _jobs: dict[str, JobRecord]
    _queue: JobQueue
    _num_running: int
    _sequence: int
    _times: Timeline
    _wake: asyncio.Event | None
    _exiting: bool
    _durable: Durability
    _resumed: asyncio.Event
    _ids: dict[str, Any]

    def _move(self, state: SessionState) -> None:
        raise NotImplementedError

    def _end(
        self,
        job: JobRecord,
        status: JobStatus,
        error: RaySessionError | None = None,
        *,
        finished: float | None = None,
    ) -> None:
        raise NotImplementedError

    def _pump(self) -> None:
        raise NotImplementedError

    async def _end_lane_jobs(
        self, outcome: Callable[[JobRecord], RaySessionError], status: JobStatus
    ) -> None:
        raise NotImplementedError

    def _details(self) -> SessionDetails:
        raise NotImplementedError

    def _poke(self) -> None:
        raise NotImplementedError

    def _head(self) -> Head:
        raise NotImplementedError

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
                for job in [job for job in self._queue if job.lane is None]:
                    self._queue.remove(job)
                    self._end(
                        job, JobStatus.ERROR, rejection(self._state, self._config, job.job_id)
                    )
                if len(self._queue):  # jobs waiting in lanes, at their workers
                    asyncio.get_running_loop().create_task(self._end_lane_jobs(
                        lambda job: rejection(self._state, self._config, job.job_id),
                        JobStatus.ERROR,
                    ))  # fmt: skip
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
