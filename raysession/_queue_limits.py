"""Back-pressure: the caps on a session's queued jobs and queued input bytes, and the
queue that keeps count and lets ``submit`` calls wait, in order, for room.

A session actor's queue holds the jobs it accepted that do not run yet. Past a cap a
submit is refused with :class:`~raysession.QueueFullError`, or, when the session was
given a ``queue_wait``, waits up to that long for room: woken when a queued job starts
or leaves, never by polling. Waiting submits are served first come, first served, and a
new submit queues behind them.
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._env import env_count
from .errors import QueueFullError

if TYPE_CHECKING:
    from ._session_records import JobRecord

JOBS_ENV = "RAYSESSION_MAX_QUEUED_JOBS"
BYTES_ENV = "RAYSESSION_MAX_QUEUED_BYTES"
DEFAULT_MAX_QUEUED_JOBS = 10_000
DEFAULT_MAX_QUEUED_BYTES = 1 << 30  # 1 GiB


@dataclass(frozen=True)
class QueueLimits:
    """A session's caps on its queue, and how long a submit waits for room."""

    max_jobs: int = DEFAULT_MAX_QUEUED_JOBS
    max_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    wait_s: float = 0.0
    """Seconds a submit past a cap waits for room; 0 refuses it at once."""


def queue_limits(
    max_queued_jobs: int | None = None,
    max_queued_bytes: int | None = None,
    queue_wait: float = 0.0,
) -> QueueLimits:
    """A session's queue limits: the ones given, else ``RAYSESSION_MAX_QUEUED_JOBS``
    (default 10 000) and ``RAYSESSION_MAX_QUEUED_BYTES`` (default 1 GiB).

    Raises:
        ValueError: a cap is not a whole number of at least 1 (given or in the
            environment), or ``queue_wait`` is negative or not finite.
    """
    jobs = env_count(JOBS_ENV, DEFAULT_MAX_QUEUED_JOBS, minimum=1)
    size = env_count(BYTES_ENV, DEFAULT_MAX_QUEUED_BYTES, minimum=1)
    for name, value in (
        ("max_queued_jobs", max_queued_jobs),
        ("max_queued_bytes", max_queued_bytes),
    ):
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and not (whole and value >= 1):
            raise ValueError(f"{name} must be a whole number, at least 1, not {value!r}")
    if isinstance(queue_wait, bool) or not isinstance(queue_wait, int | float):
        raise ValueError(f"queue_wait must be a number of seconds, not {queue_wait!r}")
    if not (math.isfinite(queue_wait) and queue_wait >= 0):
        raise ValueError(
            f"queue_wait must be 0 (refuse a job past a cap) or a positive number of seconds "
            f"to wait for room, not {queue_wait!r}"
        )
    return QueueLimits(
        jobs if max_queued_jobs is None else max_queued_jobs,
        size if max_queued_bytes is None else max_queued_bytes,
        float(queue_wait),
    )


class JobQueue(collections.deque["JobRecord"]):
    """A session's FIFO of queued jobs that counts their input bytes and wakes the
    submits waiting for room whenever a job leaves it.

    Change it with :meth:`append`, :meth:`extend`, :meth:`appendleft`, :meth:`popleft`,
    :meth:`remove` or :meth:`clear`, which keep the count.
    """

    def __init__(self, limits: QueueLimits, jobs: Iterable[JobRecord] = ()) -> None:
        super().__init__()
        self.limits = limits
        self.num_bytes = 0
        self._sizes: dict[str, int] = {}
        self._waiters: collections.deque[list[asyncio.Future[None]]] = collections.deque()
        for job in jobs:
            self.append(job)

    # ----------------------------------------------------------------- the deque

    def append(self, job: JobRecord) -> None:
        size = job.spec.input_bytes if job.spec is not None else 0
        self._sizes[job.job_id] = size
        self.num_bytes += size
        super().append(job)

    def appendleft(self, job: JobRecord) -> None:
        self.append(job)
        self.rotate(1)

    def extend(self, jobs: Iterable[JobRecord]) -> None:
        for job in jobs:
            self.append(job)

    def popleft(self) -> JobRecord:
        job = super().popleft()
        self._left(job)
        return job

    def remove(self, job: JobRecord) -> None:
        super().remove(job)
        self._left(job)

    def clear(self) -> None:
        super().clear()
        self._sizes.clear()
        self.num_bytes = 0
        self.wake()

    def _left(self, job: JobRecord) -> None:
        self.num_bytes -= self._sizes.pop(job.job_id, 0)
        self.wake()

    # ----------------------------------------------------------------- room

    @property
    def num_waiting(self) -> int:
        """Submits waiting for room."""
        return len(self._waiters)

    def fits(self, num_bytes: int) -> bool:
        """True if one more job of ``num_bytes`` stays within both caps."""
        limits = self.limits
        return len(self) < limits.max_jobs and self.num_bytes + num_bytes <= limits.max_bytes

    def wake(self) -> None:
        """Something changed: the first waiting submit looks again (it wakes the next
        one once it has taken its place)."""
        if self._waiters and not self._waiters[0][0].done():
            self._waiters[0][0].set_result(None)

    async def wait_for_room(
        self, num_bytes: int, has_room: Callable[[], bool], *, session_id: str, job_id: str
    ) -> None:
        """Return once ``has_room()`` holds and no earlier submit waits; at once if so now.

        ``has_room`` is the caller's test (the job starts at once, or :meth:`fits`). The
        caller must queue its job before it next awaits, so that waiters keep their order.

        Raises:
            QueueFullError: no room now and the session does not wait (``queue_wait`` 0),
                or none came within ``queue_wait`` seconds.
        """
        if not self._waiters and has_room():
            return
        if self.limits.wait_s <= 0:
            raise self.full_error(num_bytes, session_id=session_id, job_id=job_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.wait_s
        waiter = [loop.create_future()]
        self._waiters.append(waiter)
        try:
            while not (self._waiters[0] is waiter and has_room()):
                left = deadline - loop.time()
                if left <= 0:
                    raise self.full_error(num_bytes, session_id=session_id, job_id=job_id)
                try:
                    await asyncio.wait_for(waiter[0], left)
                except TimeoutError:
                    raise self.full_error(num_bytes, session_id=session_id, job_id=job_id) from None
                waiter[0] = loop.create_future()
        finally:
            self._waiters.remove(waiter)
            self.wake()  # the next waiter runs after this submit has queued its job

    def full_error(self, num_bytes: int, *, session_id: str, job_id: str) -> QueueFullError:
        """The error for a job of ``num_bytes`` that found no room: the cap it hit, the
        numbers, and the ways out."""
        limits = self.limits
        if len(self) >= limits.max_jobs:
            what = (
                f"has {len(self)} jobs queued, its cap (max_queued_jobs={limits.max_jobs}, "
                f"{JOBS_ENV})"
            )
        else:
            what = (
                f"has {self.num_bytes} input bytes queued; this job's {num_bytes} more would "
                f"pass its cap (max_queued_bytes={limits.max_bytes}, {BYTES_ENV})"
            )
        waited = f" after waiting {limits.wait_s:g} s" if limits.wait_s > 0 else ""
        return QueueFullError(
            f"Session {session_id} {what}; job {job_id} was not queued{waited}. Wait for "
            "queued jobs to finish, raise the cap (Session(..., max_queued_jobs=, "
            "max_queued_bytes=) or the environment variable), or give the session a "
            "queue_wait= so that run() waits for room.",
            session_id=session_id,
            job_id=job_id,
        )
