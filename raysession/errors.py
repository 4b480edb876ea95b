"""Every exception raysession raises, in one tree, and the category of its warnings.

::

    RaySessionError
    ├── SessionClosedError       you closed or cancelled it; no new jobs
    ├── SessionExpiredError      max_time passed; no new jobs, queued jobs failed
    ├── SessionNotFoundError     (also LookupError) no session with that id
    ├── QueueFullError           the session's queue is at its cap; nothing was queued
    ├── JobFailedError           the job ran and failed; __cause__ is the worker's error
    │   ├── ExecutionTimeoutError  the job ran past its max_execution_time and was stopped
    │   └── WorkerLostError        a chunk crashed its worker more often than allowed
    ├── JobCancelledError        result() on a cancelled job
    ├── JobTimeoutError          (also TimeoutError) result(timeout=) elapsed
    ├── ResultUnavailableError   the result is gone: pruned, its session ended, or an
    │                            earlier Ray connection (ray.shutdown()) held it
    └── BackendUnavailableError  workers died or cannot be scheduled: outside your code

Warnings are not errors and have their own category::

    UserWarning
    └── RaySessionWarning        raysession works, but not as you may expect (say why)

Input errors are not wrapped: pydantic's ``ValidationError`` (a ``ValueError``)
reports bad options and Qiskit's ``ValueError``/``TypeError`` report bad PUBs.

Every class pickles intact, with its keyword context (``session_id=``,
``job_id=``) and its ``__cause__``, so an error raised in an actor comes back
through Ray as the same class.
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = [
    "BackendUnavailableError",
    "ExecutionTimeoutError",
    "JobCancelledError",
    "JobFailedError",
    "JobTimeoutError",
    "QueueFullError",
    "RaySessionError",
    "RaySessionWarning",
    "ResultUnavailableError",
    "SessionClosedError",
    "SessionExpiredError",
    "SessionNotFoundError",
    "WorkerLostError",
]


def _picklable(exc: BaseException | None) -> BaseException | None:
    """Return ``exc`` if it survives pickling, else a ``RuntimeError`` carrying its text."""
    if exc is None:
        return None
    try:
        pickle.dumps(exc)
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


class RaySessionError(Exception):
    """Base class of every raysession error.

    Args:
        message: What happened and how to fix it.
        session_id: The session concerned, if any.
        job_id: The job concerned, if any.
    """

    def __init__(
        self, message: str, *, session_id: str | None = None, job_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.job_id = job_id

    @property
    def message(self) -> str:
        """The message the error was raised with."""
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        state = dict(self.__dict__)
        state["__cause__"] = _picklable(self.__cause__)
        return (type(self), (self.args[0],), state)

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        state = dict(state or {})
        cause = state.pop("__cause__", None)
        self.__dict__.update(state)
        if cause is not None:
            self.__cause__ = cause


class SessionClosedError(RaySessionError):
    """The session was closed or cancelled by its owner and takes no new jobs."""


class SessionExpiredError(RaySessionError):
    """The session's ``max_time`` passed: it takes no new jobs and its queued jobs failed."""


class SessionNotFoundError(RaySessionError, LookupError):
    """No live session has the given id."""


class JobFailedError(RaySessionError):
    """The job ran and failed; ``__cause__`` is the error raised where it ran."""


class ExecutionTimeoutError(JobFailedError):
    """The job ran longer than its ``max_execution_time`` and was stopped."""


class WorkerLostError(JobFailedError):
    """A chunk of the job crashed its worker more often than ``RAYSESSION_MAX_CHUNK_RETRIES``
    allows (the worker process died or was killed while running it).

    Transient, like :class:`BackendUnavailableError`: with ``options.raysession.max_retries``
    above 0 the session runs the job again.
    """


class QueueFullError(RaySessionError):
    """The session already holds as many queued jobs, or queued input bytes, as its cap
    allows (``max_queued_jobs``, ``max_queued_bytes``); the job was not queued.

    Wait for queued jobs to finish, raise the cap, or give the session a ``queue_wait``
    so that ``run()`` waits for room.
    """


class JobCancelledError(RaySessionError):
    """The job was cancelled before it produced a result."""


class JobTimeoutError(RaySessionError, TimeoutError):
    """``result(timeout=...)`` elapsed before the job finished; the job goes on."""


class BackendUnavailableError(RaySessionError):
    """Workers or the session actor died or cannot be scheduled; ``__cause__`` says why."""


class ResultUnavailableError(RaySessionError):
    """The job's result or records are gone: pruned from its session, lost with the
    session or the process that owned them, or held by an earlier Ray connection."""


class RaySessionWarning(UserWarning):
    """A warning raysession gives: the call works, but not as its arguments may suggest.

    Warnings are attributed to the caller's line (``stacklevel``), so filter them by
    this category, not by module: ``-W error::raysession.RaySessionWarning``.
    """
