"""How a Batch's session actor keeps its lanes: jobs queued at the workers it holds,
sent there by their submitters (see :mod:`raysession.backends._lanes`).

A base of :class:`~raysession._session_actor.SessionActor`. A job granted an idle worker
at admission opens a lane on that worker. A later job that would queue while the
Batch's workers are busy is given the lane with the fewest jobs instead (a small job
with no per-job time limit and no retries, while no other session waits for a worker
and no job of this session waits in its own queue): it is still queued here (it counts
against the queue's caps and is cancelled, failed or drained with the queue), but its
submitter sends it to the worker, which runs it in its turn and returns its result to
the submitter. The actor asks each lane's worker every ``LANE_PULL_S``, and before
any answer that reads the jobs, which of its jobs started and ended.

A lane keeps its worker until its last job ended. A job still waiting in a lane is
taken back (:meth:`~raysession.backends._lanes.Lanes.drop`) to cancel it, to fail it
when the session expires, or to run it here instead: when another session waits for a
worker (all of them), or when a worker of this session went idle (one). A lane whose
worker died gives its jobs back to the queue; their submitters then fetch their
results from a courier.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from ray.exceptions import RayActorError

from ._failures import classify
from ._log import get_logger
from ._messages import JobAttempt, JobStatus
from ._session_records import JobRecord
from ._session_streaks import SessionStreaks
from .backends._lanes import LANE_DEPTH, LANE_PULL_S, MOVE, LaneRun
from .backends._partition import chunk_seed
from .backends.base import Delivery, Grant, JobSpec
from .errors import RaySessionError

logger = get_logger(__name__)


@dataclass
class Lane:
    """A lane as its session actor keeps it."""

    grant: Grant
    """The grant of the job that opened it: the lane keeps its worker."""
    spec: JobSpec
    """That job's spec (giving the worker back names the session through it)."""
    jobs: dict[str, JobRecord] = field(default_factory=dict)
    """Its jobs that are not final, in the order they were given it."""
    opener_runs: bool = True
    """The job that opened it still runs on the worker (as a granted job)."""
    stale: bool = False
    """A job the session thought waiting had started there: the next report says more."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def worker_id(self) -> str:
        return self.grant.worker_id

    def waiting(self) -> list[JobRecord]:
        return [j for j in self.jobs.values() if j.status is JobStatus.QUEUED and not j.moving]


def _load(lane: Lane) -> int:
    return len(lane.jobs) + lane.opener_runs


class SessionLanes(SessionStreaks):
    """Opens, follows, empties and closes the session's lanes."""

    _lanes: dict[str, Lane]

    # ----------------------------------------------------------------- opening, giving

    def _open_lane(self, job: JobRecord, grant: Grant) -> None:
        """A Batch job was granted ``grant``'s idle worker: the worker takes a lane."""
        if not self._config.lanes or self._config.mode != "batch" or job.spec is None:
            return
        lane = self._lanes.get(grant.worker_id)
        if lane is None:
            lane = self._lanes[grant.worker_id] = Lane(grant, job.spec)
            asyncio.get_running_loop().create_task(self._pull_lane_often(lane))
        lane.opener_runs = True

    def _to_lane(self, job: JobRecord) -> Grant | None:
        """Give a job that queues a lane, if it may have one: the grant its submitter
        sends it with. It stays in the queue until it starts.

        Jobs of the session's own that have no lane (queued, or running and perhaps
        waiting for a worker) keep as many workers free of new lane jobs: those lanes
        drain, and their workers go to them."""
        spec = job.spec
        if (
            not self._lanes
            or spec is None
            or spec.max_execution_time is not None
            or spec.max_retries
            or self._backend.others_wait(self._config.session_id)
        ):
            return None
        # (counted up to the capacity: a queue of 10,000 jobs is not walked per submit)
        without = (queued for queued in self._queue if queued.lane is None and queued is not job)
        others = sum(1 for _ in itertools.islice(without, self._capacity()))
        allowed = self._capacity() - self._normal_running() - others
        if allowed <= 0:
            return None
        by_load = sorted(self._lanes.values(), key=_load, reverse=True)[:allowed]
        lane = min(by_load, key=_load)
        if len(lane.jobs) >= LANE_DEPTH or not lane.grant.goes_ahead(spec):
            return None
        job.lane = lane.worker_id
        lane.jobs[job.job_id] = job
        return lane.grant.to_lane()

    def _lane_slot_free(self) -> bool:
        """Whether a Batch with lanes has a slot that no lane and no running job of its
        own uses (its jobs in view may be done at their workers, not yet heard of): a
        new job is then granted a worker of its own (opening a lane), not queued."""
        if not self._lanes or any(job.lane is None for job in self._queue):
            return False
        busy = sum(1 for lane in self._lanes.values() if lane.jobs or lane.opener_runs)
        return busy + self._normal_running() < self._capacity()

    def _lane_idle(self) -> bool:
        """Whether a lane's worker has nothing to run (its last job just ended): a new
        job goes there rather than to the pool, which has no idle worker to give."""
        return any(not lane.jobs and not lane.opener_runs for lane in self._lanes.values())

    # ----------------------------------------------------------------- hearing from lanes

    async def _pull_lane_often(self, lane: Lane) -> None:
        while self._lanes.get(lane.worker_id) is lane:
            await asyncio.sleep(LANE_PULL_S)
            await self._pull_lane(lane)

    async def _sync_runs(self) -> None:
        """Hear of the jobs that streaks and lanes ran (before an answer that reads jobs)."""
        await self._sync_streak()
        if self._lanes:
            await asyncio.gather(*(self._pull_lane(lane) for lane in list(self._lanes.values())))

    async def _pull_lane(self, lane: Lane) -> None:
        async with lane.lock:
            if self._lanes.get(lane.worker_id) is not lane:
                return  # closed or lost meanwhile
            try:
                report, others_wait = await self._backend.lane_report(
                    lane.grant, client_id=self._config.session_id
                )
            except RayActorError:
                self._lane_lost(lane)
                return
            lane.stale = False
            for run in report.ended:
                self._lane_job_ended(lane, run)
            if report.running is not None:
                self._lane_job_started(lane, report.running)
            if others_wait and lane.waiting():
                await self._take_back(lane, lane.waiting(), MOVE)
            if not lane.jobs and not lane.opener_runs:
                self._close_lane(lane)  # held for the session's next job (see hold)

    def _lane_job_started(self, lane: Lane, run: LaneRun) -> JobRecord | None:
        job = lane.jobs.get(run.job_id)
        if job is None or job.status is not JobStatus.QUEUED:
            return job
        if job in self._queue:
            self._queue.remove(job)
        self._begin(job)
        job.running = run.started
        job.attempts.append(JobAttempt(attempt=1, started=run.started))
        return job

    def _lane_job_ended(self, lane: Lane, run: LaneRun) -> None:
        job = self._lane_job_started(lane, run)
        if job is None or job.status.is_final:
            lane.jobs.pop(run.job_id, None)
            return
        del lane.jobs[job.job_id]
        job.attempts[-1] = job.attempts[-1].model_copy(update={"finished": run.finished})
        if run.error is not None:
            self._end(job, *classify(run.error, job.job_id), finished=run.finished)
        else:
            job.run.plan([chunk_seed(job.seed or 0, 0, 1)])
            job.run.ran(0, run.worker_id, run.execution_s, run.place)
            job.delivery, job.delivered = Delivery([]), True  # its submitter has the result
            self._end(job, JobStatus.DONE, finished=run.finished)
        self._num_running -= 1
        self._pump()

    # ----------------------------------------------------------------- taking jobs back

    async def _take_back(
        self,
        lane: Lane,
        jobs: list[JobRecord],
        outcome: str | Callable[[JobRecord], RaySessionError],
        status: JobStatus = JobStatus.CANCELLED,
    ) -> list[JobRecord]:
        """Take waiting jobs back from their lane: moved (``MOVE``: they stay queued,
        to run here) or ended with ``status`` and the error ``outcome`` gives each
        (which their submitters' calls raise). Returns the jobs taken back; the others
        had started (the next report tells)."""
        for job in jobs:
            job.moving = True
        outcomes = {
            job.job_id: outcome if isinstance(outcome, str) else outcome(job) for job in jobs
        }
        try:
            answers = await self._backend.lane_drop(lane.grant, outcomes)
        except RayActorError:
            answers = {}
            self._lane_lost(lane)
        taken = []
        if answers and not all(answer == "dropped" for answer in answers.values()):
            # Some had started: hear of them before taking any more back from this lane.
            lane.stale = True
            asyncio.get_running_loop().create_task(self._pull_lane(lane))
        for job in jobs:
            job.moving = False
            if answers.get(job.job_id) != "dropped" or lane.jobs.pop(job.job_id, None) is None:
                continue
            taken.append(job)
            job.lane = None
            if outcome != MOVE:
                if job in self._queue:
                    self._queue.remove(job)
                self._end(job, status, outcomes[job.job_id])  # type: ignore[arg-type]
        self._pump()
        return taken

    async def _end_lane_jobs(
        self, outcome: Callable[[JobRecord], RaySessionError], status: JobStatus
    ) -> None:
        """End every job still waiting in a lane (the session was cancelled or expired);
        jobs that had started run on."""
        for lane in list(self._lanes.values()):
            if lane.waiting():
                await self._take_back(lane, lane.waiting(), outcome, status)
        await self._sync_runs()

    async def _cancel_lane_job(self, job: JobRecord) -> bool | None:
        """Cancel a job given a lane: taken back if it waits, else its worker is stopped
        (the lane's other jobs go back to the queue). False if it had ended; ``None`` if
        it left its lane meanwhile (it is cancelled as any job)."""
        await self._sync_runs()
        lane = self._lanes.get(job.lane or "")
        if lane is None or job.job_id not in lane.jobs:
            return None if not job.status.is_final else False
        if job.status is JobStatus.QUEUED:
            if await self._take_back(lane, [job], self._cancelled_error):
                return True
            await self._pull_lane(lane)
            if lane.jobs.get(job.job_id) is not job:
                return None if not job.status.is_final else False
        del lane.jobs[job.job_id]
        self._end(job, JobStatus.CANCELLED)
        self._num_running -= 1
        self._backend.release(lane.spec, lane.grant, stop=True)
        self._lane_lost(lane)
        return True

    def _cancelled_error(self, job: JobRecord) -> RaySessionError:
        from .errors import JobCancelledError

        return JobCancelledError(
            f"Job {job.job_id} was cancelled; it has no result.",
            session_id=self._config.session_id,
            job_id=job.job_id,
        )

    # ----------------------------------------------------------------- workers

    def _release_granted(self, spec: JobSpec, grant: Grant, *, stop: bool, lost: bool) -> None:
        """A granted job ended: its worker goes back, unless its lane still has jobs."""
        lane = self._lanes.get(grant.worker_id)
        if lane is None:
            self._backend.release(spec, grant, stop=stop, lost=lost)
            return
        lane.opener_runs = False
        if stop or lost:
            self._backend.release(spec, grant, stop=stop, lost=lost)
            self._lane_lost(lane)
        elif not lane.jobs:
            self._close_lane(lane)

    def _close_lane(self, lane: Lane) -> None:
        """The lane has no jobs left: its worker goes back (held for the next job)."""
        if self._lanes.get(lane.worker_id) is lane:
            del self._lanes[lane.worker_id]
            self._backend.release(lane.spec, lane.grant, stop=False)
            self._pump()

    def _lane_lost(self, lane: Lane) -> None:
        """The lane's worker died (or was stopped): its jobs go back to the queue, to run
        here; their submitters fetch the results from a courier."""
        if self._lanes.get(lane.worker_id) is not lane:
            return
        del self._lanes[lane.worker_id]
        logger.warning("session %s: the worker of a lane died; %d jobs run again",
                       self._config.session_id, len(lane.jobs), **self._ids)  # fmt: skip
        for job in reversed(list(lane.jobs.values())):
            job.lane, job.moving = None, False
            if job.status is JobStatus.RUNNING:  # it ran there: it runs again
                job.status, job.running, job.attempts = JobStatus.QUEUED, None, []
                job.run.retries += 1
                self._num_running -= 1
                self._queue.appendleft(job)
        lane.jobs.clear()
        self._backend.release(lane.spec, lane.grant, stop=False, lost=True)
        self._pump()

    def _steal(self) -> None:
        """A worker of the session is idle while a lane has jobs waiting: move one here
        (it runs on the idle worker)."""
        if not self._lanes or (self._state.is_final and not self._queue):
            return
        if any(job.lane is None for job in self._queue):
            return  # a job of the queue takes the idle worker
        lane_workers = [lane for lane in self._lanes.values() if lane.jobs or lane.opener_runs]
        moving = sum(1 for lane in self._lanes.values() for j in lane.jobs.values() if j.moving)
        idle = self._capacity() - len(lane_workers) - self._normal_running() - moving
        if idle <= 0:
            return
        movable = [lane for lane in self._lanes.values() if not lane.stale]
        busiest = max(movable, key=lambda lane: len(lane.waiting()), default=None)
        waiting = [] if busiest is None else busiest.waiting()
        if waiting:
            waiting[-1].moving = True
            assert busiest is not None
            asyncio.get_running_loop().create_task(self._take_back(busiest, waiting[-1:], MOVE))

    def _normal_running(self) -> int:
        """Running jobs that are neither in a lane nor opened one (each has, or waits
        for, a worker of its own)."""
        in_lanes = sum(
            1 for lane in self._lanes.values() for j in lane.jobs.values()
            if j.status is JobStatus.RUNNING
        ) + sum(1 for lane in self._lanes.values() if lane.opener_runs)  # fmt: skip
        return self._num_running - in_lanes

    def _pump(self) -> None:
        super()._pump()
        self._steal()
