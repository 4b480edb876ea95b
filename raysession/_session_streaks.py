"""How a session actor keeps a streak: one submitter's consecutive small jobs, run on one
worker without a call to the actor each (see :mod:`raysession.backends._streaks`).

A base of :class:`~raysession._session_actor.SessionActor`. While a streak is open it
holds one of the session's running slots (a Session runs nothing else meanwhile), and
its worker stays reserved. The actor asks the worker every ``STREAK_PULL_S`` what the
streak ran, and before any answer that reads the session's jobs; each job it hears of
gets its record and sequence number then. Any submit that reaches the actor, ``close()``,
``cancel()``, the session's end, or another session waiting for a worker ends the
streak first: jobs keep their FIFO order, and a job of the streak still running is
followed as any running job (cancel and all).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass, field

from ray.exceptions import RayActorError

from ._failures import classify
from ._log import get_logger
from ._messages import JobAttempt, JobStatus
from ._session_records import JobRecord
from ._session_runs import JobRuns
from .backends._streaks import (
    STREAK_IDLE_S,
    STREAK_PULL_S,
    StreakReport,
    StreakRun,
    StreakTerms,
)
from .backends.base import Delivery, Grant, JobSpec
from .errors import ResultUnavailableError

logger = get_logger(__name__)


@dataclass
class OpenStreak:
    """A streak as its session actor keeps it."""

    terms: StreakTerms
    grant: Grant
    """The grant of the job that opened it: the worker stays reserved for the streak."""
    spec: JobSpec
    """That job's spec (giving the worker back names the session through it)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    """Records of the streak's jobs that are not final yet."""


class SessionStreaks(JobRuns):
    """Opens, follows and ends the session's streak."""

    _streak: OpenStreak | None = None
    _last_of: dict[str, OpenStreak]
    """Ended streaks whose last job still runs, by that job's id."""

    def _may_open_streak(self, job: JobRecord) -> bool:
        """Whether a job granted the worker its submitter sent it ahead to opens a streak:
        only in a Session, only one at a time, and only for jobs without a per-job limit
        or retries (a streak's jobs have neither)."""
        spec = job.spec
        return (
            self._config.mode == "dedicated"
            and self._streak is None
            and spec is not None
            and spec.max_execution_time is None
            and spec.max_retries == 0
            and self._config.interactive_timeout_s > 2 * STREAK_IDLE_S
        )

    def _open_streak(self, job: JobRecord, grant: Grant) -> StreakTerms:
        """Open a streak for the submitter of ``job`` (granted ``grant``, which the streak
        keeps); the worker hears of it with the job's verdict."""
        assert job.spec is not None
        started = self._times.started_at
        expires = None if started is None else started + self._config.max_time_s
        terms = StreakTerms(uuid.uuid4().hex, expires)
        streak = OpenStreak(terms, grant, job.spec)
        self._streak = streak
        self._num_running += 1  # the streak's slot: nothing else runs meanwhile
        asyncio.get_running_loop().create_task(self._pull_streak_often(streak))
        return terms

    async def _pull_streak_often(self, streak: OpenStreak) -> None:
        while self._streak is streak:
            await asyncio.sleep(STREAK_PULL_S)
            await self._pull_streak(streak, end=False)

    async def _sync_streak(self) -> None:
        """Hear of the streak's jobs now (before an answer that reads the jobs)."""
        streak = self._streak
        if streak is not None:
            await self._pull_streak(streak, end=False)

    async def _end_streak(self) -> None:
        """End the streak, if one is open; its running job, if any, is followed on."""
        streak = self._streak
        if streak is not None:
            await self._pull_streak(streak, end=True)

    async def _pull_streak(self, streak: OpenStreak, *, end: bool) -> None:
        async with streak.lock:
            if self._streak is not streak:
                return  # ended meanwhile
            try:
                report, others_wait = await self._report(streak, end=end, wait=False)
            except RayActorError:
                self._streak_lost(streak)
                return
            for run in report.runs:
                self._streak_ended(streak, run)
            running = None if report.running is None else self._streak_job(streak, report.running)
            if end or not report.open or others_wait:
                self._close_streak(streak, running)

    async def _report(
        self, streak: OpenStreak, *, end: bool, wait: bool
    ) -> tuple[StreakReport, bool]:
        """Ask the streak's worker what it ran (see ``Backend.streak_report``)."""
        return await self._backend.streak_report(
            streak.grant,
            streak.terms.streak_id,
            end=end,
            wait=wait,
            client_id=self._config.session_id,
        )

    def _streak_job(self, streak: OpenStreak, run: StreakRun) -> JobRecord:
        """The record of a job of the streak: made (and numbered) when first heard of."""
        job = streak.jobs.get(run.job_id)
        if job is not None:
            return job
        job = JobRecord(run.job_id, None, self._sequence, run.created)
        self._sequence += 1
        job.seed, job.tags, job.kind, job.planned_chunks = run.seed, run.tags, run.kind, 1
        job.granted = job.delivered = True  # its submitter has the result
        job.status, job.running = JobStatus.RUNNING, run.started
        job.attempts.append(JobAttempt(attempt=1, started=run.started))  # closed at its end
        self._jobs[job.job_id] = job
        streak.jobs[job.job_id] = job
        self._metrics.submitted()
        self._metrics.started(max(0.0, run.started - run.created))
        self._times.last_job_started = run.started
        return job

    def _streak_ended(self, streak: OpenStreak, run: StreakRun) -> None:
        job = self._streak_job(streak, run)
        del streak.jobs[job.job_id]
        if run.error is not None:
            self._end(job, *classify(run.error, job.job_id), finished=run.finished)
            return
        job.run.plan([run.seed])
        job.run.ran(0, run.worker_id, run.execution_s, run.place)
        job.delivery = Delivery([])
        self._end(job, JobStatus.DONE, finished=run.finished)

    def _close_streak(self, streak: OpenStreak, running: JobRecord | None) -> None:
        """The streak takes no more jobs: its slot goes to its running job, if any, which
        is followed to its end; else the worker goes back."""
        self._streak = None
        if running is None:
            self._backend.release(streak.spec, streak.grant, stop=False)
            self._num_running -= 1
            self._pump()
            return
        self._last_of[running.job_id] = streak
        task = asyncio.get_running_loop().create_task(self._follow_last(streak, running))
        task.add_done_callback(functools.partial(self._last_ended, streak, running))
        running.task = task

    async def _follow_last(self, streak: OpenStreak, job: JobRecord) -> Delivery:
        """Follow the last job of an ended streak, running on its worker, to its end (what
        then becomes of the job and the worker: :meth:`_last_ended`)."""
        try:
            report, _ = await self._report(streak, end=True, wait=True)
        except RayActorError:
            return Delivery([])  # its worker died
        for run in report.runs:
            if run.job_id in streak.jobs:
                self._streak_ended(streak, run)
        return Delivery([])

    def _last_ended(self, streak: OpenStreak, job: JobRecord, task: asyncio.Task[Delivery]) -> None:
        """The following of a streak's last job ended, however it ended: a done callback,
        so it runs even for a following cancelled before it began.

        Cancelled while the job is still the streak's: ``cancel_job`` (its worker is
        stopped). Cancelled after ``forget_lost`` forgot the job, or ended with the job
        still the streak's (its worker died, or never knew it): its worker is lost."""
        self._last_of.pop(job.job_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("session %s: following job %s failed: %s", self._config.session_id,
                           job.job_id, task.exception(), **self._ids)  # fmt: skip
        ours = job.job_id in streak.jobs
        stop = task.cancelled() and ours
        lost = not stop and (ours or task.cancelled())
        if stop:
            self._end(job, JobStatus.CANCELLED)
        elif lost:
            self._forget(streak)  # (a no-op after forget_lost)
        self._backend.release(streak.spec, streak.grant, stop=stop, lost=lost)
        self._num_running -= 1
        self._pump()

    def _streak_lost(self, streak: OpenStreak) -> None:
        """The open streak's worker died: it ends, and its jobs not heard of as finished
        are forgotten (see :meth:`_forget`)."""
        self._forget(streak)
        if self._streak is streak:
            logger.warning("session %s: the worker of its streak died",
                           self._config.session_id, **self._ids)  # fmt: skip
            self._streak = None
            self._backend.release(streak.spec, streak.grant, stop=False, lost=True)
            self._num_running -= 1
            self._pump()

    def _forget(self, streak: OpenStreak, job_id: str | None = None) -> None:
        """Forget the streak's unfinished jobs (or one): they were never accepted by the
        session, only run by a worker that died; their submitters, who hold them, submit
        them again (``RuntimeJobV2._rerun``), as new jobs."""
        for forgotten in [job_id] if job_id is not None else list(streak.jobs):
            job = streak.jobs.pop(forgotten, None)
            if job is not None:
                self._jobs.pop(forgotten, None)
                job.error = ResultUnavailableError(
                    f"Job {forgotten}'s worker died; its submitter runs it again.",
                    session_id=self._config.session_id,
                    job_id=forgotten,
                )
                job.done.set()  # a reader waiting for it hears why, and asks its submitter

    async def forget_lost(self, job_id: str) -> bool:
        """A job's submitter saw the worker of its streak die before the job's result
        came: forget the job unless it is final (the submitter submits it again). Returns
        whether the session now has no record of it."""
        await self._sync_streak()
        streak = self._last_of.get(job_id) or self._streak
        if streak is not None and job_id in streak.jobs:
            job = streak.jobs[job_id]
            self._forget(streak, job_id)
            if job.task is not None:  # the last job of an ended streak: stop following it
                job.task.cancel()
        return job_id not in self._jobs
