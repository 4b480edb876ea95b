"""Lanes: a Batch's queued jobs, waiting at the worker their session named for them.

A Batch that runs many small jobs would otherwise pay, for each job that waits for a
worker, the session actor's dispatch and a courier's relay of the result: about 8 ms of
CPU per job on top of Ray's one call (``benchmarks/batch_cost.py``). Instead, when such a
job is admitted while the Batch's workers are busy, its session names one of them (a
*lane*, see :mod:`raysession._session_lanes`) and the submitter sends the job there
itself (``AerWorker.run_lane``): the job waits at the worker, runs when its turn comes,
and its result goes straight back to its submitter. The session asks the worker every
``LANE_PULL_S`` which of its jobs started and ended (:meth:`Lanes.report`).

A waiting job holds a thread of the worker's ``"lane"`` group (``LANE_THREADS`` of them;
later jobs wait in Ray's queue for one), so the worker knows the jobs waiting there, and
the session can take one back before it starts (:meth:`Lanes.drop`): to cancel it, to
fail it (the session expired), or to move it (a worker went idle, or another session
waits for a worker). The job is the session's at once; its call ends when it reaches a
thread (at once, unless more than ``LANE_THREADS`` jobs wait there). A moved job's thread
waits for the job's result from its session, which runs it as any queued job, and
returns it: the submitter's ref stays the job's one Ray future.

The table here is plain threading, shared by the worker's threads; it runs no job.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

from ._blob import as_blob

# How often a session actor asks a lane's worker what started and ended there.
LANE_PULL_S = 0.25
# The most jobs a session lets wait in one lane (W3's 200 jobs submitted at once fit).
LANE_DEPTH = 1024
# Threads of a worker's "lane" group: waiting jobs past these wait in Ray's queue for one,
# and a drop of such a job takes effect when it gets one. Each thread costs the worker
# memory (72 threads: 55 MB more after W3's Batches than with lanes off; 16: 12-22 MB).
LANE_THREADS = 16
# Jobs whose drop came before they did, and recent ends, that a worker remembers.
_KEPT = 4096
# How often the first waiting job looks whether the worker's lock is free.
_LOCK_LOOK_S = 0.05

MOVE = "move"
"""A drop's outcome for a job its session runs itself instead (see the module)."""


@dataclass(frozen=True)
class LaneJob:
    """A job sent to a lane: one argument, one blob."""

    request: Any
    """The job as its one chunk (a ``ChunkRequest``)."""
    session_id: str

    def __reduce__(self) -> tuple[Any, ...]:
        return as_blob(self)


@dataclass
class LaneRun:
    """A lane's job that started (and perhaps ended): what its session's record needs."""

    job_id: str
    started: float
    """UNIX seconds."""
    finished: float | None = None
    worker_id: str = ""
    execution_s: float = 0.0
    place: str = ""
    """Where storage holds its result, if it stored one (see ``._store``)."""
    error: BaseException | None = None
    """What it raised, if it failed (its submitter's ref raises it too)."""


@dataclass(frozen=True)
class LaneReport:
    """The answer to a session actor's :meth:`Lanes.report`."""

    ended: tuple[LaneRun, ...]
    """Jobs that ended since the last report, in the order they ended."""
    running: LaneRun | None
    """The lane job running now, if any."""


class Lanes:
    """The jobs waiting, running and ended in one worker's lanes (see the module)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiting: dict[str, Any] = {}
        """Jobs waiting here, in arrival order, with their drop's outcome (``None``: none)."""
        self._early: collections.OrderedDict[str, Any] = collections.OrderedDict()
        """Drops of jobs that had not arrived yet."""
        self._running: LaneRun | None = None
        self._ended: list[LaneRun] = []
        self._done: collections.OrderedDict[str, None] = collections.OrderedDict()

    def wait_turn(self, job_id: str, lock: threading.Lock) -> tuple[Any, LaneRun | None]:
        """Wait until the job may run: every job that came before it here ran, and the
        worker's ``lock`` (its one-chunk-at-a-time lock) is free. It then holds ``lock``
        and is the running job: returns its run; the caller releases ``lock`` after it,
        then calls :meth:`finish`. Returns the outcome instead if the job was dropped
        first (an error to raise, or :data:`MOVE`)."""
        with self._changed:
            if job_id in self._early:
                return self._early.pop(job_id), None
            self._waiting[job_id] = None
            while True:
                outcome = self._waiting[job_id]
                if outcome is not None:
                    del self._waiting[job_id]
                    self._changed.notify_all()
                    return outcome, None
                first = next((j for j, o in self._waiting.items() if o is None), None)
                if self._running is None and first == job_id:
                    if lock.acquire(blocking=False):
                        del self._waiting[job_id]
                        self._running = LaneRun(job_id, time.time())
                        return None, self._running
                    # Another chunk runs here: look again when it ends (see poke), or soon.
                    self._changed.wait(_LOCK_LOOK_S)
                    continue
                self._changed.wait()

    def poke(self) -> None:
        """The worker's lock was released (a chunk ended): the first waiting job looks."""
        with self._changed:
            if self._waiting:
                self._changed.notify_all()

    def finish(self, run: LaneRun) -> None:
        """The running job ended (``run``, filled in): the next may start."""
        with self._changed:
            run.finished = time.time()
            self._running = None
            self._ended.append(run)
            self._done[run.job_id] = None
            while len(self._done) > _KEPT:
                self._done.popitem(last=False)
            self._changed.notify_all()

    def drop(self, outcomes: dict[str, Any]) -> dict[str, str]:
        """Take jobs back before they start: each is ``"dropped"`` (it will not run here;
        its call ends with its outcome: an error to raise, or :data:`MOVE`),
        ``"running"`` or ``"ended"`` (too late). A job not here yet is dropped when it
        comes."""
        answers = {}
        with self._changed:
            for job_id, outcome in outcomes.items():
                if self._running is not None and self._running.job_id == job_id:
                    answers[job_id] = "running"
                elif job_id in self._done:
                    answers[job_id] = "ended"
                elif job_id in self._waiting:
                    if self._waiting[job_id] is None:
                        self._waiting[job_id] = outcome
                    answers[job_id] = "dropped"
                else:
                    self._early[job_id] = outcome
                    while len(self._early) > _KEPT:
                        self._early.popitem(last=False)
                    answers[job_id] = "dropped"
            self._changed.notify_all()
        return answers

    def report(self) -> LaneReport:
        """The jobs that ended since the last report, and the one running now."""
        with self._changed:
            ended, self._ended = self._ended, []
            running = None if self._running is None else dataclasses.replace(self._running)
            return LaneReport(tuple(ended), running)
