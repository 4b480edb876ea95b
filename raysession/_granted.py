"""How a session actor follows a job it granted a worker to.

The submitter sends a granted job straight to its worker (see
:meth:`raysession.Session._submit`), or sent it there already, ahead of its admission.
The actor tells the worker to run it and waits for the job's small completion record
(:meth:`~raysession.backends.base.Backend.follow`): no result and no ref of the
submitter's passes through the actor. A worker that died, lacked a key, or never got
the job means the job runs again through the backend. A job that opened a streak
(:mod:`._session_streaks`) leaves its worker to the streak.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ray.exceptions import RayActorError

from ._log import get_logger, ids
from ._session_records import JobRecord
from .backends.base import Ahead, Backend, Delivery, Grant, JobSpec

logger = get_logger(__name__)


class Release(Protocol):
    """Gives a granted job's worker back once the job ended (see ``Backend.release``);
    the session's own, which keeps the worker for a lane opened on it."""

    def __call__(self, spec: JobSpec, grant: Grant, *, stop: bool, lost: bool) -> None: ...


class SentAhead:
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


async def follow_granted(
    job: JobRecord, grant: Grant, backend: Backend, release: Release
) -> Delivery | None:
    """The job's delivery once its granted worker ran it (no refs: its submitter owns
    the result, and storage has a copy), or ``None`` if it must run again through the
    backend (its worker died, lacked a key, or never got it). The grant is released
    either way, unless the job opened a streak that still uses the worker.

    Raises:
        asyncio.CancelledError: the job was stopped (its worker is stopped too).
        RayTaskError: the job failed.
    """
    spec = job.spec  # kept: the record drops its spec once the job is final
    assert spec is not None
    stop = lost = False
    try:
        done = await backend.follow(grant, job.job_id, job.ran_ahead, job.streak)
        if backend.completed(grant, done, job.run):
            job.delivered = True  # the submitter owns the result
            return Delivery([])
        logger.warning(
            "job %s did not run on its granted worker; running it again",
            job.job_id,
            **ids(spec.session_id, job.job_id),
        )
    except asyncio.CancelledError:
        stop = True
        raise
    except RayActorError:
        lost = True
        job.run.retries += 1
        logger.warning(
            "job %s lost its worker; running it again",
            job.job_id,
            **ids(spec.session_id, job.job_id),
        )
    finally:
        if job.streak is None or stop or lost:  # else the streak it opened keeps the worker
            release(spec, grant, stop=stop, lost=lost)
    return None
