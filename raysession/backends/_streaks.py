"""Streaks: a submitter's consecutive small jobs, sent straight to one worker, of which
the session hears in batches.

A process that runs one small job after another in a session (an optimizer loop, a
sweep of tiny jobs) would otherwise pay a call to the session actor for every job. When
the session grants such a job the worker its submitter sent it ahead to, it also opens a
*streak* there (:class:`StreakTerms`, given with the job's verdict). Until the streak
ends, the submitter sends its next jobs, one at a time, straight to that worker
(``AerWorker.run_streak``), and the worker runs them at once. The session actor keeps
the worker reserved for the streak and asks it every ``STREAK_PULL_S`` for the jobs it
ran (:meth:`Streaks.report`); each job then gets its record, its sequence number and its
stored copy. A read of the session's records (``details()``, ``job_info()``, ...) asks
first, so no reader sees the session without a job its submitter already has.

A streak ends when the session actor ends it (another job arrived at the session, it
closed, was cancelled or expired, another session waits for a worker, a job of the
streak was cancelled), when it had no job for ``STREAK_IDLE_S``, when the session's
``max_time`` passed, or when nobody asked for its report for ``STREAK_UNPULLED_S`` (the
session actor died). A job that reaches its worker after its streak ended was never
accepted by anyone: the worker submits it to the session as its submitter would have
(and returns that run's result, or the session's refusal), so the job's handle stays
one Ray future and nothing sent is lost.

The table here is plain threading, shared by the worker's threads; it runs no job.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._blob import as_blob

# How often a session actor asks a streak's worker for the jobs it ran.
STREAK_PULL_S = 0.25
# A streak with no job for this long ends (its submitter stopped; the worker goes back).
# More than the submitter's own window (``raysession.job.AHEAD_WINDOW_S``).
STREAK_IDLE_S = 2.0
# A streak whose session actor stopped asking for reports this long ends (it died).
STREAK_UNPULLED_S = 2.0
# Ended streaks a worker remembers (so that one ended before it opened never opens).
_ENDED_KEPT = 4096
# Most a report waits for the stored copies of the jobs it reports.
_WRITE_WAIT_S = 30.0
# How long the writer waits after a job ended before it writes the job's stored copy:
# by then the result has left for its submitter. Woken at once, the writer thread took
# the GIL from the thread returning the result: +0.1 ms (2-3%) on a tiny job, measured
# with 3,000 interleaved pairs of jobs with storage on and off; -0.5% and -1.1% with this
# wait (benchmarks/storage_cost.py).
_WRITE_AFTER_S = 0.001

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreakTerms:
    """What a session tells a worker when it opens a streak there."""

    streak_id: str
    expires_at: float | None
    """UNIX time at which the session's ``max_time`` passes: no job of the streak starts
    after it."""


@dataclass(frozen=True)
class StreakJob:
    """A job sent to a streak: one argument, one blob (each argument of a Ray call costs
    the caller tens of microseconds)."""

    spec: Any
    """The job (a ``JobSpec``)."""
    streak_id: str
    created: float
    """When its submitter created it (UNIX seconds)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return as_blob(self)


@dataclass
class StreakRun:
    """One job a streak ran (or runs): what its session's record needs."""

    job_id: str
    created: float
    """When its submitter created it (UNIX seconds)."""
    tags: tuple[str, ...]
    kind: str
    seed: int
    started: float = 0.0
    finished: float | None = None
    worker_id: str = ""
    execution_s: float = 0.0
    place: str = ""
    """Where storage holds its result (see ``._store``), if it stored one."""
    error: BaseException | None = None
    """What it raised, if it failed (its handle raised it too)."""


@dataclass(frozen=True)
class StreakReport:
    """The answer to a session actor's :meth:`Streaks.report`."""

    runs: tuple[StreakRun, ...]
    """Jobs that ended since the last report, in the order they ran."""
    running: StreakRun | None
    """The job running now, if any (ended streaks: it is the streak's last)."""
    open: bool
    """False once the streak ended: it takes no more jobs."""


@dataclass
class _Streak:
    terms: StreakTerms
    sim_key: str
    last_used: float
    last_pulled: float
    closed: bool = False
    running: StreakRun | None = None
    runs: list[StreakRun] = field(default_factory=list)
    unwritten: int = 0
    """Runs in ``runs`` whose stored copies are still being written."""

    def usable(self, now: float) -> bool:
        expires = self.terms.expires_at
        return (
            not self.closed
            and now - self.last_used <= STREAK_IDLE_S
            and now - self.last_pulled <= STREAK_UNPULLED_S
            and (expires is None or time.time() < expires)
        )


class Streaks:
    """The streaks open at one worker (see the module's docstring)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._streaks: dict[str, _Streak] = {}
        self._ended: collections.OrderedDict[str, None] = collections.OrderedDict()
        """Streaks that ended here (or were ended before they opened), newest last."""
        self._writes: queue.SimpleQueue[tuple[_Streak, StreakRun, Callable[[], str]]] = (
            queue.SimpleQueue()
        )
        self._writer: threading.Thread | None = None

    def open(self, terms: StreakTerms, sim_key: str) -> None:
        """Open a streak (the session granted its first job here) whose jobs run with the
        Aer options of ``sim_key``, unless its session ended it already (its report can
        overtake its opening: other threads)."""
        now = time.monotonic()
        with self._changed:
            if terms.streak_id not in self._ended:
                self._streaks[terms.streak_id] = _Streak(terms, sim_key, now, now)

    def _bury(self, streak_id: str) -> None:
        self._streaks.pop(streak_id, None)
        self._ended[streak_id] = None
        while len(self._ended) > _ENDED_KEPT:
            self._ended.popitem(last=False)

    def begin(self, streak_id: str, run: StreakRun) -> str | None:
        """Take a job of the streak, to run now: returns the key of the Aer options it
        runs with; ``None`` if the streak ended (or never opened here, or runs a job
        already): the job is not the streak's."""
        now = time.monotonic()
        with self._changed:
            streak = self._streaks.get(streak_id)
            if streak is None or streak.running is not None:
                return None
            if not streak.usable(now):
                streak.closed = True
                return None
            streak.running, streak.last_used = run, now
            run.started = time.time()
            return streak.sim_key

    def end(
        self, streak_id: str, run: StreakRun | None, store: Callable[[], str] | None = None
    ) -> None:
        """The streak's running job ended (``run``, filled in), or did not run (``None``).

        ``store`` writes the job's result to storage and returns its place: a thread of
        this table makes the write, off the job's path (its result is on its way to its
        submitter), one job at a time (no burst); the report waits for it."""
        with self._changed:
            streak = self._streaks.get(streak_id)
            if streak is None:
                return
            streak.running, streak.last_used = None, time.monotonic()
            if run is not None:
                run.finished = time.time()
                streak.runs.append(run)
                if store is not None:
                    streak.unwritten += 1
                    self._writes.put((streak, run, store))
                    if self._writer is None:
                        self._writer = threading.Thread(
                            target=self._write_forever, name="streak-writer", daemon=True
                        )
                        self._writer.start()
            self._changed.notify_all()

    def _write_forever(self) -> None:
        while True:
            writes = [self._writes.get()]
            time.sleep(_WRITE_AFTER_S)  # the job's result leaves first
            while not self._writes.empty():
                writes.append(self._writes.get())
            for streak, run, store in writes:
                try:
                    place = store()
                except Exception:  # the job ran and its submitter has it: no stored copy
                    logger.warning("job %s: its result was not stored", run.job_id,
                                   exc_info=True)  # fmt: skip
                    place = ""
                with self._changed:
                    run.place = place
                    streak.unwritten = max(0, streak.unwritten - 1)
                    self._changed.notify_all()

    def report(self, streak_id: str, *, end: bool, wait: bool) -> StreakReport:
        """The jobs the streak ran since the last report (their results written to
        storage first, if the session stores results, so their records say where).

        Args:
            end: End the streak: it takes no job after this.
            wait: Wait for the job running now to end, and report it too.
        """
        with self._changed:
            streak = self._streaks.get(streak_id)
            if streak is None:  # ended, or not opened yet: then it never opens if ended now
                is_open = streak_id not in self._ended and not end
                if end:
                    self._bury(streak_id)
                return StreakReport((), None, is_open)
            streak.last_pulled = time.monotonic()
            if end or not streak.usable(streak.last_pulled):
                streak.closed = True
            if wait:
                self._changed.wait_for(lambda: streak.running is None)
            self._changed.wait_for(lambda: streak.unwritten == 0, _WRITE_WAIT_S)
            runs, streak.runs = streak.runs, []
            streak.unwritten = 0  # (a write still unfinished after the wait: reported without)
            # A copy: its thread fills the job in when it ends, perhaps while this pickles.
            running = None if streak.running is None else dataclasses.replace(streak.running)
            if streak.closed and running is None:
                self._bury(streak_id)
            return StreakReport(tuple(runs), running, not streak.closed)
