"""Opt-in retries: a job runs again after a transient failure, and each run is recorded.

A session actor runs each job through :func:`run_attempts`: when an attempt fails for a
reason outside the job (:func:`._failures.is_transient`) and the job asked for retries
(``options.raysession.max_retries``), the job runs again at once. It keeps its slot in
the session (and so its FIFO place) throughout; cancelling the job or its
``max_execution_time`` passing stops whichever attempt runs, as they stop a job that
never retries.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._failures import classify, is_transient
from ._log import get_logger, ids
from ._messages import JobAttempt, JobStatus
from .backends.base import BackendRun, Delivery

if TYPE_CHECKING:
    from ._session_records import JobRecord

logger = get_logger(__name__)


async def run_attempts(job: JobRecord, attempt: Callable[[int], Awaitable[Delivery]]) -> Delivery:
    """Run ``attempt(1)``, then ``attempt(2)``, ... while an attempt fails transiently and
    the job has retries left; record each in ``job.attempts``.

    Each retry starts with a fresh ``job.run``, so the job's chunk metrics describe its
    last attempt.

    Returns:
        The delivery of the attempt that succeeded.

    Raises:
        Exception: what the last attempt raised (a user error at once, a transient one
            once the retries are spent).
    """
    spec = job.spec
    assert spec is not None
    number = 0
    while True:
        number += 1
        if number > 1:
            job.run = BackendRun()
        job.attempts.append(JobAttempt(attempt=number, started=time.time()))
        try:
            delivery = await attempt(number)
        except Exception as exc:
            _, error = classify(exc, job.job_id)
            job.attempts[-1] = job.attempts[-1].model_copy(
                update={
                    "finished": time.time(),
                    "error_type": None if error is None else type(error).__name__,
                    "error_message": None if error is None else error.message,
                }
            )
            if not (is_transient(error) and number <= spec.max_retries):
                raise
            logger.warning(
                "session %s job %s: attempt %d of %d failed (%s); running it again",
                spec.session_id,
                job.job_id,
                number,
                spec.max_retries + 1,
                error,
                **ids(spec.session_id, job.job_id),
            )
            continue
        job.attempts[-1] = job.attempts[-1].model_copy(update={"finished": time.time()})
        return delivery


def settled_attempts(job: JobRecord) -> tuple[JobAttempt, ...]:
    """The job's attempts, the last one closed with the job's end if the job ended while
    it ran (cancelled, or stopped at its ``max_execution_time``)."""
    attempts = tuple(job.attempts)
    if not attempts or attempts[-1].finished is not None or not job.status.is_final:
        return attempts
    kind: str | None = None
    message: str | None = None
    if job.error is not None:
        kind, message = type(job.error).__name__, job.error.message
    elif job.status is JobStatus.CANCELLED:
        kind, message = "JobCancelledError", f"Job {job.job_id} was cancelled."
    last = attempts[-1].model_copy(
        update={"finished": job.finished, "error_type": kind, "error_message": message}
    )
    return (*attempts[:-1], last)
