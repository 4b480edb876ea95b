"""ProviderSession: a session opened with ``backend.open_session()``, as in qiskit-ibm-provider."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qiskit.primitives.containers.sampler_pub import SamplerPub

from .._duration import parse_duration
from .._env import env_whole_seconds
from .._submit import submit_job
from ..errors import SessionClosedError
from ..job import RuntimeJobV2
from ..options import SamplerOptions, SessionLimits
from ..session import Session

if TYPE_CHECKING:
    from .provider import RayBackend

__all__ = ["ProviderSession", "provider_max_time", "provider_min_max_time"]

MIN_MAX_TIME_ENV = "RAYSESSION_PROVIDER_MIN_MAX_TIME"
"""Environment variable: the smallest ``max_time`` ``open_session`` accepts, in seconds."""
DEFAULT_MIN_MAX_TIME = 300


def provider_min_max_time() -> int:
    """The smallest ``max_time`` ``open_session`` accepts, in seconds, before the system bounds.

    Raises:
        ValueError: ``RAYSESSION_PROVIDER_MIN_MAX_TIME`` is set to something other than a
            whole number of seconds of at least 1.
    """
    return env_whole_seconds(MIN_MAX_TIME_ENV, DEFAULT_MIN_MAX_TIME)


def provider_max_time(max_time: int | str | None) -> int:
    """Seconds of a provider session's ``max_time``; ``None`` gives the system maximum.

    Raises:
        ValueError: ``max_time`` is not a duration, or lies outside
            ``RAYSESSION_PROVIDER_MIN_MAX_TIME`` (default 300 s) to the system maximum
            (``RAYSESSION_MAX_MAX_TIME``, default 8 h).
    """
    limits = SessionLimits.from_env()
    low = max(provider_min_max_time(), limits.min_max_time)
    if max_time is None:
        return limits.max_max_time
    seconds = parse_duration(max_time)
    if not low <= seconds <= limits.max_max_time:
        raise ValueError(
            f"max_time={max_time!r} ({seconds} s) must lie between {low} s and the system "
            f"maximum of {limits.max_max_time} s (bounds: {MIN_MAX_TIME_ENV} and "
            "RAYSESSION_MAX_MAX_TIME)."
        )
    return seconds


class ProviderSession:
    """A session opened with :meth:`RayBackend.open_session`, as in qiskit-ibm-provider.

    Lifecycle: opened without a job, its :attr:`session_id` is ``None``. The
    first ``backend.run`` starts a raysession :class:`~raysession.Session` and
    runs the job with the session's id as the job id, so afterwards
    ``session_id`` equals the first job's id. :meth:`close` (or leaving the
    ``with`` block, or ``backend.close_session()``) lets queued jobs finish;
    :meth:`cancel` (or ``backend.cancel_session()``) cancels them. Once closed,
    the backend runs jobs in job mode again.

    Args:
        backend: The backend the session runs on.
        max_time: Most time the session lives after its first job starts: int
            seconds or a string such as ``"2h 30m 40s"``. Default: the system maximum.

    Raises:
        ValueError: ``max_time`` is invalid or out of bounds (see :func:`provider_max_time`).

    Example:
        >>> with backend.open_session(max_time="1h") as session:  # doctest: +SKIP
        ...     job = backend.run(bell)
        ...     assert job.job_id() == session.session_id
    """

    def __init__(self, backend: RayBackend, max_time: int | str | None = None) -> None:
        self._backend = backend
        self._max_time_s = provider_max_time(max_time)
        self._session: Session | None = None
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def _restore(
        cls, backend: RayBackend, max_time_s: int, session: Session | None, closed: bool
    ) -> ProviderSession:
        self = cls(backend, max_time_s)
        self._session, self._closed = session, closed
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        state = (self._backend, self._max_time_s, self._session, self._closed)
        return (ProviderSession._restore, state)

    @property
    def session_id(self) -> str | None:
        """The session's id: ``None`` until its first job, then that job's id."""
        return None if self._session is None else self._session.session_id

    @property
    def max_time(self) -> int:
        """Seconds the session lives after its first job starts."""
        return self._max_time_s

    @property
    def runtime_session(self) -> Session | None:
        """The raysession :class:`~raysession.Session` underneath, once the first job started it."""
        return self._session

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`cancel` was called."""
        return self._closed

    @property
    def active(self) -> bool:
        """True while the session accepts jobs."""
        if self._closed:
            return False
        return self._session is None or self._session.active

    def status(self) -> str:
        """``"Pending"``, ``"In progress, accepting new jobs"``,
        ``"In progress, not accepting new jobs"`` or ``"Closed"``."""
        if self._session is None:
            return "Closed" if self._closed else "Pending"
        return self._session.status()

    def submit(self, pubs: Sequence[SamplerPub], options: SamplerOptions) -> RuntimeJobV2:
        """Queue a sampler job; the first one starts the session and gets its id.

        Raises:
            SessionClosedError: the session was closed or cancelled.
            SessionExpiredError: the session's ``max_time`` passed.
        """
        with self._lock:
            if self._closed:
                raise SessionClosedError(
                    f"Session {self.session_id} on {self._backend.name} is closed; "
                    "open a new one with backend.open_session().",
                    session_id=self.session_id,
                )
            first = self._session is None
            if self._session is None:
                self._session = Session(self._backend.aer_backend, self._max_time_s)
            session = self._session
            # As on IBM's cloud: the session's id is its first job's id.
            job_id = session.session_id if first else None
            return submit_job(session, "sampler", list(pubs), options, job_id=job_id)

    def close(self) -> None:
        """Stop accepting jobs; queued and running jobs finish. Idempotent."""
        with self._lock:
            self._closed = True
            if self._session is not None:
                self._session.close()

    def cancel(self) -> None:
        """Stop accepting jobs and cancel queued ones; a running job finishes. Idempotent."""
        with self._lock:
            self._closed = True
            if self._session is not None:
                self._session.cancel()

    def __enter__(self) -> ProviderSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ProviderSession {self.session_id} on {self._backend.name!r}>"
