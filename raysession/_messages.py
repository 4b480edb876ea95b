"""The messages between handles and a session actor: job status, job records, session
details, the answer to a submit and the whereabouts of a result."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from qiskit.providers import JobStatus as QiskitJobStatus

from ._lifecycle import SessionState
from .backends._blob import as_blob
from .backends._streaks import StreakTerms
from .backends.base import Grant


class JobStatus(StrEnum):
    """A job's status, as qiskit-ibm-runtime spells it.

    Members equal both qiskit-ibm-runtime's strings and qiskit's
    :class:`~qiskit.providers.JobStatus` members, so code from either world works::

        job.status() == "DONE"
        job.status() == qiskit.providers.JobStatus.DONE
    """

    INITIALIZING = "INITIALIZING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, QiskitJobStatus):
            return bool(self.value == other.name)
        if isinstance(other, Enum) and not isinstance(other, JobStatus):
            return False
        return bool(str.__eq__(self, other))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    @property
    def is_final(self) -> bool:
        """True for DONE, ERROR and CANCELLED."""
        return self in (JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED)

    def to_qiskit(self) -> QiskitJobStatus:
        """The matching :class:`qiskit.providers.JobStatus` member."""
        return QiskitJobStatus[self.value]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobAttempt(_Record):
    """One run of a job: the first, or a retry after a transient failure
    (``options.raysession.max_retries``)."""

    attempt: int
    """1 for the first run, 2 for the first retry, and so on."""
    started: float
    """When the attempt started (UNIX seconds)."""
    finished: float | None = None
    """When it ended; ``None`` while it runs."""
    error_type: str | None = None
    """The name of the raysession error it ended with; ``None`` if it succeeded (or runs)."""
    error_message: str | None = None
    """That error's message."""


class JobMetrics(_Record):
    """Timestamps (UNIX seconds) and placement of one job."""

    created: float
    """When the session accepted the job."""
    running: float | None = None
    """When the job was handed to the backend."""
    finished: float | None = None
    """When the job reached a final state."""
    sequence: int
    """The job's place in its session's FIFO order (0 is the first job accepted)."""
    workers: tuple[str, ...] = ()
    """Ids of the worker actors that ran the job's chunks."""
    num_chunks: int = 0
    """How many chunks the job was split into."""
    retries: int = 0
    """Chunks that ran again because their worker died."""
    seed: int | None = None
    """The job's seed: the one given, or the one drawn for it."""
    chunk_seeds: tuple[int, ...] = ()
    """The seed each chunk ran with, in chunk order (the job's seed for a one-chunk job)."""
    chunk_workers: tuple[str, ...] = ()
    """The worker that ran each chunk, in chunk order."""
    chunk_execution_s: tuple[float, ...] = ()
    """Seconds each chunk ran on its worker, in chunk order."""
    attempts: tuple[JobAttempt, ...] = ()
    """Each run of the job, in order: one, plus one per retry after a transient failure.
    The chunk fields above describe the last attempt."""

    @property
    def queued(self) -> float:
        """When the job entered the queue (the same instant it was accepted)."""
        return self.created

    @property
    def execution_s(self) -> float | None:
        """Seconds from start to finish, once finished."""
        if self.running is None or self.finished is None:
            return None
        return self.finished - self.running


class JobInfo(_Record):
    """What a session knows of one job."""

    job_id: str
    session_id: str
    status: JobStatus
    error_message: str | None = None
    error_type: str | None = None
    """The name of the raysession error class the job failed with."""
    metrics: JobMetrics
    tags: tuple[str, ...] = ()
    """The job's tags, as last updated."""
    primitive_id: str = ""
    """``"estimator"`` or ``"sampler"`` (empty for a job the session no longer describes)."""


class SessionOwner(_Record):
    """Who opened a session, as recorded when the :class:`~raysession.Session` was created.

    A label for people, not an identity Ray checks: anyone who can reach the cluster can
    act on any session (see the README's "Trust boundary").
    """

    user: str
    """The OS user of the opening process (:func:`getpass.getuser`)."""
    host: str
    """The host it ran on (:func:`socket.gethostname`)."""
    ray_job_id: str
    """The Ray job (driver) it belonged to, as hex."""


class SessionDetails(_Record):
    """A session's details, as returned by :meth:`raysession.Session.details` and
    :func:`raysession.list_sessions`."""

    id: str
    backend_name: str
    state: SessionState
    max_time: int
    """Seconds from the first job's start until the session expires."""
    interactive_timeout: float
    """Seconds with nothing queued after a job before the session goes inactive."""
    started_at: float | None
    closed_at: float | None
    last_job_started: float | None
    last_job_completed: float | None
    mode: Literal["dedicated", "batch"]
    usage_time: float
    """Session: wall-clock seconds since the first job started. Batch: seconds of execution."""
    num_jobs: int
    """Jobs accepted so far."""
    storage: str | None = None
    """Where the session stores its job records and results (``RAYSESSION_STORAGE``)."""
    created_at: float | None = None
    """When the session was created (UNIX seconds)."""
    num_queued: int = 0
    """Jobs waiting in the session's queue (accepted, not yet running)."""
    queued_bytes: int = 0
    """Input bytes (circuits, parameter values, observables) of the queued jobs."""
    num_waiting: int = 0
    """``run()`` calls waiting for room in the queue (see ``queue_wait``)."""
    num_running: int = 0
    """Jobs running now."""
    num_finished: int = 0
    """Jobs in a final state: done, failed or cancelled."""
    owner: SessionOwner | None = None
    """Who opened the session; ``None`` for a session made by an older raysession."""


@dataclass(frozen=True)
class Admission:
    """The session's answer to a submit: when it accepted the job and, if the job starts
    at once on a worker reserved for it, the grant its submitter runs it with. (Kept
    small: it is on every job's critical path.)"""

    created: float
    """When the session accepted the job (UNIX seconds)."""
    grant: Grant | None = None
    ran_ahead: bool = False
    """The job sent ahead to ``grant``'s worker runs there (see :class:`~.backends.base.Ahead`)."""
    streak: StreakTerms | None = None
    """The job opened a streak on ``grant``'s worker: its submitter's next small jobs go
    there directly (see :mod:`~.backends._streaks`)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return as_blob(self)  # see backends._blob: cloudpickle walks dataclasses slowly
