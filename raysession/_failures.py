"""The one place where what Ray raised becomes what raysession raises.

Four questions, each answered here and nowhere else, and never by reading Ray's
message text:

* :func:`classify`: how did a job end, given the exception its run raised (in the
  session actor)?
* :func:`is_transient`: did it fail for a reason outside the job, so that running it
  again may succeed (``options.raysession.max_retries``)?
* :func:`for_caller`: which raysession error does a job handle raise for what
  ``ray.get`` raised?
* :func:`session_gone`: a session actor cannot be reached. Did the session end (it
  recorded its final state in Ray's GCS key-value store before exiting) or die?
"""

from __future__ import annotations

import asyncio

from ray.exceptions import (
    ActorUnschedulableError,
    RayActorError,
    RayError,
    RayTaskError,
    TaskCancelledError,
)
from ray.experimental import internal_kv

from . import errors as _errors
from ._lifecycle import SessionState
from ._messages import JobInfo, JobStatus
from .errors import (
    BackendUnavailableError,
    JobCancelledError,
    JobFailedError,
    RaySessionError,
    SessionClosedError,
    SessionExpiredError,
    WorkerLostError,
)

_KV_NAMESPACE = "raysession"

ACTOR_GONE = (RayActorError, ActorUnschedulableError)
"""What a call to an actor that is gone raises: it died for good, or it cannot come back
(its restart is pinned to a node that died)."""


def innermost(exc: BaseException) -> BaseException:
    """The task error that raised first, through Ray's wrapping of a task whose argument
    failed (a delivery task whose session actor call raised, say)."""
    while isinstance(exc, RayTaskError) and isinstance(exc.cause, RayTaskError):
        exc = exc.cause
    return exc


def is_job_error(exc: BaseException) -> bool:
    """True if the job's own code, the worker or the session actor raised ``exc`` (as
    opposed to Ray losing an actor, an owner or an object)."""
    exc = innermost(exc)
    # A str cause: Ray's text for a task whose argument (a session's answer) was lost.
    return (
        isinstance(exc, RayTaskError)
        and isinstance(exc.cause, Exception)
        and not isinstance(exc.cause, RayError)
    )


def classify(exc: BaseException, job_id: str) -> tuple[JobStatus, RaySessionError | None]:
    """How a job ended, from what its run raised: ``CANCELLED`` (no error) or ``ERROR``
    with the error its handle reports (``__cause__`` is the original)."""
    exc = innermost(exc)
    error: RaySessionError
    if isinstance(exc, RayTaskError):  # first: Ray's error is also an instance of its cause
        cause = exc.cause
        if isinstance(cause, BaseException) and not isinstance(cause, RayTaskError):
            if isinstance(cause, RayError | RaySessionError | TaskCancelledError):
                return classify(cause, job_id)
            error = JobFailedError(f"Job {job_id} failed: {type(cause).__name__}: {cause}")
            error.__cause__ = cause
            return JobStatus.ERROR, error
        error = JobFailedError(f"Job {job_id} failed: {exc}")
        return JobStatus.ERROR, error
    if isinstance(exc, asyncio.CancelledError | TaskCancelledError | JobCancelledError):
        return JobStatus.CANCELLED, None
    if isinstance(exc, RaySessionError):
        error = type(exc)(exc.message)
        error.__cause__ = exc.__cause__
        return JobStatus.ERROR, error
    if isinstance(exc, RayError):
        error = BackendUnavailableError(
            f"Job {job_id} lost its workers ({type(exc).__name__}); the worker pool is "
            "closed or a node died."
        )
        error.__cause__ = exc
        return JobStatus.ERROR, error
    error = JobFailedError(f"Job {job_id} could not run: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return JobStatus.ERROR, error


def is_transient(error: RaySessionError | None) -> bool:
    """True if a job that ended with ``error`` (from :func:`classify`) failed for a
    transient backend reason, and may succeed if run again: its workers or the pool were
    lost, no node could place a worker within the placement timeout
    (:class:`BackendUnavailableError`), or a chunk crashed its worker more often than
    ``RAYSESSION_MAX_CHUNK_RETRIES`` allows (:class:`WorkerLostError`).

    Everything else is the job's own: an error of its circuits or input (Aer refused
    it), :class:`~raysession.ExecutionTimeoutError`, a cancellation (no error).
    """
    return isinstance(error, BackendUnavailableError | WorkerLostError)


def for_caller(exc: BaseException, *, job_id: str, session_id: str | None) -> BaseException:
    """The error a job handle raises for what ``ray.get`` (or ``await``) raised.

    A raysession error raised in the session actor or a worker comes back as itself; an
    error of the job's own code (Aer, Qiskit) as :class:`JobFailedError`; a lost actor,
    owner or object as :class:`BackendUnavailableError`.
    """
    exc = innermost(exc)
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        if isinstance(cause, RaySessionError):
            return cause
        if isinstance(cause, TaskCancelledError):
            return JobCancelledError(
                f"Job {job_id} was cancelled; it has no result.",
                session_id=session_id,
                job_id=job_id,
            )
        if isinstance(cause, Exception) and not isinstance(cause, RayError):
            _, error = classify(exc, job_id)
            assert error is not None
            error.session_id, error.job_id = session_id, job_id
            return error
        if isinstance(cause, BaseException):
            exc = cause
    if isinstance(exc, RaySessionError):
        return exc
    error = BackendUnavailableError(
        f"Job {job_id}: its session or workers died ({type(exc).__name__}).",
        session_id=session_id,
        job_id=job_id,
    )
    error.__cause__ = exc
    return error


def record_final(session_id: str, state: SessionState, ended: list[JobInfo]) -> None:
    """Record in Ray's GCS that a session ended in ``state``, and how its jobs without a
    result ended (``ended``), for handles that ask after the actor exited."""
    internal_kv._internal_kv_put(
        f"final/{session_id}", state.value, overwrite=True, namespace=_KV_NAMESPACE
    )
    for info in ended:
        internal_kv._internal_kv_put(
            f"job/{info.job_id}", info.model_dump_json(), overwrite=True, namespace=_KV_NAMESPACE
        )


def recorded_error(info: JobInfo) -> RaySessionError:
    """The error a job that ended without a result raises, rebuilt from its record."""
    if info.status is JobStatus.CANCELLED:
        return JobCancelledError(
            f"Job {info.job_id} was cancelled; it has no result.",
            session_id=info.session_id,
            job_id=info.job_id,
        )
    kind = getattr(_errors, info.error_type or "", JobFailedError)
    if not (isinstance(kind, type) and issubclass(kind, RaySessionError)):
        kind = JobFailedError
    error: RaySessionError = kind(
        info.error_message or "", session_id=info.session_id, job_id=info.job_id
    )
    return error


def ended_job(job_id: str) -> JobInfo | None:
    """How a job without a result ended, as its session recorded on exit, if it did."""
    value = internal_kv._internal_kv_get(f"job/{job_id}", namespace=_KV_NAMESPACE)
    return None if value is None else JobInfo.model_validate_json(value)


def final_state(session_id: str) -> SessionState | None:
    """The state a session recorded when it ended, or ``None`` if it never ended."""
    value = internal_kv._internal_kv_get(f"final/{session_id}", namespace=_KV_NAMESPACE)
    return None if value is None else SessionState(value.decode())


def session_gone(session_id: str, job_id: str | None, exc: BaseException) -> RaySessionError:
    """The error for a session actor that cannot be reached: closed or expired if the
    session ended, :class:`BackendUnavailableError` if its actor died."""
    state = final_state(session_id)
    error: RaySessionError
    if state is not None:
        error = ended(session_id, job_id, state)
    else:
        error = BackendUnavailableError(
            f"Session {session_id}'s actor died (its node may have failed); create a new Session.",
            session_id=session_id,
            job_id=job_id,
        )
    error.__cause__ = exc
    return error


def ended(session_id: str, job_id: str | None, state: SessionState) -> RaySessionError:
    """The error for a job sent to a session that ended in ``state``."""
    error: RaySessionError
    if state is SessionState.EXPIRED:
        error = SessionExpiredError(
            f"Session {session_id} expired; create a new Session to submit more jobs.",
            session_id=session_id,
            job_id=job_id,
        )
    else:
        error = SessionClosedError(
            f"Session {session_id} is closed; create a new Session to submit more jobs.",
            session_id=session_id,
            job_id=job_id,
        )
    return error
