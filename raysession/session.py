"""Session and Batch: picklable handles to a session actor, context managers, and from_id()."""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import ray
from qiskit.providers import BackendV2
from qiskit.transpiler import Target
from ray.exceptions import RayActorError, RayTaskError

from ._admin import close_all_sessions, list_sessions, this_owner
from ._connect import NAMESPACE, actor_name, ensure_ray
from ._courier import courier, deliver
from ._duration import check_bounds, parse_duration
from ._failures import ACTOR_GONE, ended, session_gone
from ._lifecycle import SessionState
from ._log import get_logger, ids
from ._messages import Admission, JobInfo, SessionDetails
from ._queue_limits import queue_limits
from ._session_actor import SessionActor
from ._session_records import Mode, SessionConfig, lanes_enabled, session_actor_options
from ._storage import StoredJob, read_job, read_session
from .backends._device import isa_target, simulator_of
from .backends._store import storage_uri
from .backends._streaks import StreakTerms
from .backends.base import (
    Ahead,
    Backend,
    BackendSource,
    Grant,
    JobSpec,
    ProvidesBackend,
    is_backend,
)
from .errors import RaySessionError, SessionNotFoundError
from .job import (
    RuntimeJobV2,
    connection,
    forget_last_grant,
    stored_job,
    take_last_grant,
    take_seen_done,
)
from .options import SessionLimits

logger = get_logger(__name__)

__all__ = ["Batch", "Session", "close_all_sessions", "current_session", "list_sessions"]

_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "raysession_current_session", default=None
)


_default_source: Callable[[], BackendSource] | None = None


def set_default_backend_source(factory: Callable[[], BackendSource] | None) -> None:
    """Who resolves a backend name given without ``service=``: :mod:`raysession.ibm`
    registers its local :class:`~raysession.QiskitRuntimeService` on import."""
    global _default_source
    _default_source = factory


def resolve_backend(
    backend: Backend | ProvidesBackend | BackendV2 | str | None, service: BackendSource | None
) -> Backend:
    """The backend jobs run on: ``backend`` itself, what a backend object gives, the
    simulator of any other Qiskit ``BackendV2`` (one per object, see
    :meth:`AerBackend.from_backend`), or the backend a service (``service``, else the
    default source) gives for a name or ``None``.

    Raises:
        ValueError: ``backend`` is none of these, or a name has no service to resolve it.
    """
    if backend is not None and not isinstance(backend, str):
        if is_backend(backend):
            return backend
        if isinstance(backend, ProvidesBackend):
            return backend.raysession_backend()
        if isinstance(backend, BackendV2):
            return simulator_of(backend)
        raise ValueError(
            "backend must be a raysession backend such as AerBackend, a backend name, "
            f"a backend from QiskitRuntimeService or a Qiskit BackendV2, "
            f"not {type(backend).__name__}"
        )
    source = service
    if source is None and backend is not None and _default_source is not None:
        source = _default_source()
    if source is None:
        raise ValueError("Session needs backend= (an AerBackend or a backend name) or service=.")
    return source.backend(backend).raysession_backend()


def aer_options_of(backend: Backend) -> dict[str, Any]:
    """The Aer options of ``backend`` without its noise model (a handle carries them)."""
    options = getattr(backend, "aer_options", None)
    if not isinstance(options, dict):
        return {}
    return {name: value for name, value in options.items() if name != "noise_model"}


def current_session() -> Session | None:
    """The session of the innermost enclosing ``with Session(...)`` block, if any."""
    return _current.get()


class Session:
    """A Qiskit Runtime session on Ray: jobs run one at a time, in FIFO order.

    A named, detached Ray actor owns the session; this object is a handle to
    it. The handle pickles, so it can be passed into Ray tasks, and
    :meth:`from_id` attaches to the session from any process on the cluster.

    Lifecycle: ``Pending`` until the first job starts, then ``In progress,
    accepting new jobs``. With nothing queued for ``interactive_timeout``
    seconds after a job it goes inactive (``Pending``) until the next job.
    :meth:`close` (or leaving the ``with`` block) stops new jobs and lets queued
    ones finish (``In progress, not accepting new jobs``, then ``Closed``);
    :meth:`cancel` also cancels queued jobs; ``max_time`` after the first job
    started it expires and fails its queued jobs. A session that never gets a
    job closes itself after ``idle_timeout``. Once final, the actor exits after
    handing over the last result.

    Back-pressure: the session's queue (jobs accepted but not yet running) is capped at
    ``max_queued_jobs`` jobs and ``max_queued_bytes`` input bytes. A job that would
    queue past a cap is refused: ``run()`` raises :class:`~raysession.QueueFullError`
    in the caller, and the job gets no id in the session and no sequence number. With
    ``queue_wait`` > 0, ``run()`` first waits up to that many seconds for room. A job
    that starts at once is never refused.

    Args:
        backend: Where jobs run: a :class:`~raysession.AerBackend`, a backend
            name such as ``"ibmq_qasm_simulator"`` (resolved through ``service``,
            or raysession's local catalog), or a backend object from
            :class:`~raysession.QiskitRuntimeService` / :class:`~raysession.RayProvider`.
            Every backend runs on the cluster's shared worker pool. Default: the
            service's default backend (``service`` is then required).
        max_time: Most time the session lives after its first job starts: int
            seconds or a string such as ``"2h 30m 40s"``. Default: the system
            maximum (8 h unless ``RAYSESSION_MAX_MAX_TIME`` says otherwise).
        service: A :class:`~raysession.QiskitRuntimeService` that resolves ``backend``.
        interactive_timeout: Seconds without a queued job before the session
            goes inactive. Default: 60.
        idle_timeout: Seconds a session with no work waits before closing
            itself. Default: 1800.
        max_queued_jobs: Most jobs waiting in the session's queue (accepted, not yet
            running). Default: ``RAYSESSION_MAX_QUEUED_JOBS``, else 10 000.
        max_queued_bytes: Most input bytes (pickled circuits, parameter values,
            observables) of the queued jobs. Default: ``RAYSESSION_MAX_QUEUED_BYTES``,
            else 1 GiB (1073741824).
        queue_wait: What ``run()`` does with a job that would queue past a cap: 0
            raises :class:`~raysession.QueueFullError` at once; more waits up to that
            many seconds for room (in arrival order), then raises it. Default: 0.

    Raises:
        ValueError: ``max_time``, a timeout, a queue cap or ``queue_wait`` is invalid
            (given, or in the environment), or ``backend`` is neither a backend nor a
            known backend name.

    Example:
        >>> with Session(backend=AerBackend(), max_time="1h") as session:  # doctest: +SKIP
        ...     job = EstimatorV2().run([(circuit, observable)])  # doctest: +SKIP
        ...     print(job.result()[0].data.evs)  # doctest: +SKIP
    """

    _MODE: ClassVar[Mode] = "dedicated"

    def __init__(
        self,
        backend: Backend | ProvidesBackend | BackendV2 | str | None = None,
        max_time: int | str | None = None,
        *,
        service: BackendSource | None = None,
        interactive_timeout: float = 60.0,
        idle_timeout: float = 1800.0,
        max_queued_jobs: int | None = None,
        max_queued_bytes: int | None = None,
        queue_wait: float = 0.0,
    ) -> None:
        queue = queue_limits(max_queued_jobs, max_queued_bytes, queue_wait)
        backend = resolve_backend(backend, service)
        limits = SessionLimits.from_env()
        if max_time is None:
            max_time_s = limits.max_max_time
        else:
            max_time_s = check_bounds(
                parse_duration(max_time), low_s=limits.min_max_time, high_s=limits.max_max_time
            )
        for what, value in (
            ("interactive_timeout", interactive_timeout),
            ("idle_timeout", idle_timeout),
        ):
            if not value > 0:
                raise ValueError(f"{what} must be a positive number of seconds, not {value!r}")
        ensure_ray()
        session_id = uuid.uuid4().hex
        config = SessionConfig(
            session_id=session_id,
            mode=self._MODE,
            max_time_s=max_time_s,
            interactive_timeout_s=float(interactive_timeout),
            idle_timeout_s=float(idle_timeout),
            storage=storage_uri(),
            queue=queue,
            owner=this_owner(),
            lanes=lanes_enabled(),
        )
        actor_cls: Any = ray.remote(SessionActor).options(**session_actor_options(session_id))
        actor = actor_cls.remote(config, backend)
        courier(refresh=True)  # up (again) before a queued job finishes
        self._init_handle(
            session_id,
            actor,
            ray.get(actor.start.remote()),
            isa_target(backend),
            aer_options_of(backend),
        )
        logger.info("created %s %s on %s", self._MODE, session_id, backend.name, **ids(session_id))

    def _init_handle(
        self,
        session_id: str,
        actor: Any,
        details: SessionDetails,
        target: Target | None = None,
        aer_options: dict[str, Any] | None = None,
    ) -> None:
        self._session_id = session_id
        self._isa_target = target
        self._aer_options = dict(aer_options or {})
        self._made_in = connection()
        self._actor = actor
        self._details_seen = details
        self._tokens: list[contextvars.Token[Session | None]] = []
        self._stored_job_ids: list[str] | None = None
        """Set for a session read from storage (it ended): its jobs."""

    @classmethod
    def _attach(
        cls,
        session_id: str,
        actor: Any,
        details: SessionDetails,
        target: Target | None = None,
        aer_options: dict[str, Any] | None = None,
    ) -> Session:
        self = cls.__new__(cls)
        self._init_handle(session_id, actor, details, target, aer_options)
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        state = (
            self._session_id,
            self._actor,
            self._details_seen,
            self._isa_target,
            self._aer_options,
        )
        return (type(self)._attach, state)

    @classmethod
    def from_id(cls, session_id: str) -> Session:
        """Attach to a session by its id, from any process on the cluster.

        A session that ended is found in storage (``RAYSESSION_STORAGE``) until its
        retention passes: its :meth:`details`, :meth:`job_ids` and :meth:`job` work, and
        it takes no new jobs.

        Returns:
            A :class:`Session`, or a :class:`Batch` if the id is a batch's.

        Raises:
            SessionNotFoundError: no live or stored session has that id.
        """
        ensure_ray()
        try:
            actor: Any = ray.get_actor(actor_name("session", session_id), namespace=NAMESPACE)
            details: SessionDetails = ray.get(actor.details.remote())
            backend: Backend = ray.get(actor.backend.remote())
        except (ValueError, *ACTOR_GONE) as exc:
            stored = read_session(session_id)
            if stored is None:
                raise SessionNotFoundError(
                    f"No live session has id {session_id}, and none is stored in "
                    f"{storage_uri()}. Use raysession.list_sessions() to see the live ones.",
                    session_id=session_id,
                ) from exc
            details, job_ids = stored
            ended = Batch if details.mode == "batch" else Session
            handle = ended._attach(session_id, None, details)
            handle._stored_job_ids = job_ids
            return handle
        handle_cls = Batch if details.mode == "batch" else Session
        return handle_cls._attach(
            session_id, actor, details, isa_target(backend), aer_options_of(backend)
        )

    # -------------------------------------------------------------- reading

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self._session_id

    @property
    def isa_target(self) -> Target | None:
        """The target this session's circuits must be ISA for (a simulated device's), or
        ``None``: a plain simulator runs any circuit Aer runs."""
        return self._isa_target

    @property
    def aer_options(self) -> dict[str, Any]:
        """The Aer simulator options of the session's backend (``method``,
        ``max_memory_mb``, ...); empty for a backend that is not an ``AerBackend``. The
        primitives read them to refuse, before queueing, a circuit too large for a worker."""
        return dict(self._aer_options)

    @property
    def max_time(self) -> int:
        """Seconds the session lives after its first job starts."""
        return self._details_seen.max_time

    @property
    def mode(self) -> Mode:
        """``"dedicated"`` for a Session, ``"batch"`` for a Batch."""
        return self._details_seen.mode

    def backend(self) -> str:
        """The name of the backend the session runs on."""
        return self._details_seen.backend_name

    def details(self) -> SessionDetails:
        """The session's details; after it ended, the last details seen, marked final."""
        if self._actor is None:
            return self._details_seen
        try:
            seen = take_seen_done(self._session_id)
            self._details_seen = ray.get(self._actor.details.remote(seen))
        except ACTOR_GONE:
            stored = read_session(self._session_id, self._details_seen.storage)
            if stored is not None:
                self._details_seen, self._stored_job_ids = stored
            elif not self._details_seen.state.is_final:
                self._details_seen = self._details_seen.model_copy(
                    update={"state": SessionState.CLOSED}
                )
        return self._details_seen

    def status(self) -> str:
        """``"Pending"``, ``"In progress, accepting new jobs"``,
        ``"In progress, not accepting new jobs"`` or ``"Closed"``."""
        return self.details().state.status()

    @property
    def active(self) -> bool:
        """True while the session accepts jobs."""
        return self.details().state.is_accepting

    def usage(self) -> float:
        """Seconds used: for a Session, wall clock since the first job started; for a
        Batch, the jobs' execution time."""
        return self.details().usage_time

    def job_ids(self) -> list[str]:
        """Ids of the jobs the session knows, in submission order."""
        if self._actor is not None:
            try:
                return list(ray.get(self._actor.job_ids.remote()))
            except ACTOR_GONE:
                self.details()  # reads the stored job ids, if the session stored them
        return list(self._stored_job_ids or [])

    def jobs(self) -> list[JobInfo]:
        """Records of the jobs the session knows (status, error, metrics, tags), in
        submission order: the last 2,000 finished ones and every unfinished one. Once
        the session has ended, the records it stored (see ``RAYSESSION_STORAGE``)."""
        if self._actor is not None:
            try:
                return list(ray.get(self._actor.jobs.remote()))
            except ACTOR_GONE:
                pass
        found = (self._stored(job_id) for job_id in self.job_ids())
        return [stored.info for stored in found if stored is not None]

    def job_info(self, job_id: str) -> JobInfo:
        """Status, error message and metrics of one of the session's jobs.

        Raises:
            KeyError: the session does not know the job.
            SessionNotFoundError: the session has ended and did not store the job.
        """
        try:
            if self._actor is None:
                raise RayActorError()
            info: JobInfo = ray.get(self._actor.job_info.remote(job_id))
        except RayTaskError as exc:
            if not isinstance(exc.cause, KeyError):
                raise
            stored = self._stored(job_id)
            if stored is None:
                raise KeyError(job_id) from None
            return stored.info
        except ACTOR_GONE as exc:
            stored = self._stored(job_id)
            if stored is None:
                raise SessionNotFoundError(
                    f"Session {self._session_id} has ended and job {job_id} is not in "
                    f"its storage ({self.storage}).",
                    session_id=self._session_id,
                ) from exc
            return stored.info
        return info

    def job(self, job_id: str) -> RuntimeJobV2:
        """A handle of one of the session's jobs, submitted from any process: its status,
        metrics and result (``result()`` waits for a job that has not finished).

        A finished job is read from storage when the session no longer keeps it (it
        ended, or pruned the job's result): that works after the submitter exited.

        Raises:
            KeyError: the session does not know the job.
            SessionNotFoundError: the session has ended and did not store the job.
        """
        info = self.job_info(job_id)
        if info.status.is_final or self._actor is None:
            stored = self._stored(job_id)
            if stored is not None:
                return stored_job(stored, self._actor, info)
        return RuntimeJobV2(
            deliver(self._session_id, job_id),
            job_id=job_id,
            session_id=self._session_id,
            actor=self._actor,
            created=info.metrics.created,
            tags=info.tags,
        )

    def _stored(self, job_id: str) -> StoredJob | None:
        stored = read_job(job_id, self.storage)
        if stored is None or stored.info.session_id != self._session_id:
            return None
        return stored

    @property
    def storage(self) -> str | None:
        """Where the session stores its job records and results (``RAYSESSION_STORAGE``
        of the process that opened it), or ``None``."""
        return self._details_seen.storage

    # -------------------------------------------------------------- acting

    def _submit(self, spec: JobSpec, *, job_mode: bool = False) -> RuntimeJobV2:
        """Admit a built job (see :func:`raysession._submit.submit_job`, the one caller).

        A job the session starts at once on an idle worker comes back with a grant: it
        is sent from here straight to that worker, and the result comes back the same
        way. Any other job runs when its turn comes and its result is fetched by a
        courier of this node, asked now.

        Raises:
            SessionClosedError: the session is closed or cancelled.
            SessionExpiredError: the session's ``max_time`` passed.
            QueueFullError: the session's queue is at a cap (see ``queue_wait``).
            BackendUnavailableError: the session's actor died.
        """
        if self._actor is None:
            raise ended(self._session_id, spec.job_id, self._details_seen.state)
        taken = take_last_grant(self._session_id)
        last, streak = (None, None) if taken is None else taken
        if last is not None and streak is not None and _streak_takes(last, streak, spec):
            job = self._to_streak(last, streak, spec, job_mode)
            if job is not None:
                return job
        ahead = Ahead(last.worker_id) if last is not None and last.goes_ahead(spec) else None
        try:
            seen = take_seen_done(self._session_id)
            answer = self._actor.submit.remote(spec, seen, ahead)
            # Sent right after the submit: the session's verdict and the job then reach
            # the worker at about the same moment (see _send_ahead).
            ahead_ref = None if ahead is None or last is None else _send_ahead(last, spec)
            admission: Admission = ray.get(answer)
        except RayTaskError as exc:
            if isinstance(exc.cause, RaySessionError):
                raise exc.cause from None
            raise
        except ACTOR_GONE as exc:
            raise session_gone(self._session_id, spec.job_id, exc) from exc
        grant = admission.grant
        ref: ray.ObjectRef[Any] | None = None
        if admission.ran_ahead:
            ref = ahead_ref
            if ref is None:  # it never left: it lapses at the worker and runs again
                grant = None
        elif grant is not None:
            try:
                ref = grant.dispatch(spec)
            except ACTOR_GONE:  # the worker died since the grant: the session runs it again
                grant = None
        if ref is None:
            ref = deliver(self._session_id, spec.job_id)
        job = RuntimeJobV2(
            ref,
            job_id=spec.job_id,
            session_id=self._session_id,
            actor=self._actor,
            created=admission.created,
            granted=grant is not None,
            job_mode=job_mode,
            tags=spec.tags,
            grant=grant,
        )
        job._ran_ahead, job._streak = admission.ran_ahead, admission.streak
        return job

    def _to_streak(
        self, grant: Grant, streak: StreakTerms, spec: JobSpec, job_mode: bool
    ) -> RuntimeJobV2 | None:
        """Send the job to the streak open for this process on ``grant``'s worker (see
        :mod:`.backends._streaks`): no call to the session actor. ``None`` if the worker
        is gone (the job then goes through the session)."""
        created = time.time()
        try:
            ran, ref = grant.run_streak(spec, streak.streak_id, created)
        except ACTOR_GONE:
            return None
        job = RuntimeJobV2(
            ref,
            job_id=spec.job_id,
            session_id=self._session_id,
            actor=self._actor,
            created=created,
            granted=True,
            job_mode=job_mode,
            tags=spec.tags,
            grant=grant,
        )
        job._streak, job._in_streak, job._spec = streak, ran, spec
        return job

    def close(self) -> None:
        """Stop accepting jobs; queued and running jobs finish. Idempotent."""
        if connection() != self._made_in or self._actor is None:
            return  # made over an earlier Ray connection, or ended: nothing to close
        forget_last_grant(self._session_id)  # no job of this process goes to a streak now
        try:
            self._details_seen = ray.get(self._actor.close.remote())
        except ACTOR_GONE:
            pass

    def cancel(self) -> None:
        """Stop accepting jobs and cancel queued ones; a running job finishes. Idempotent."""
        if connection() != self._made_in or self._actor is None:
            return  # made over an earlier Ray connection, or ended: nothing to cancel
        forget_last_grant(self._session_id)
        try:
            self._details_seen = ray.get(self._actor.cancel.remote())
        except ACTOR_GONE:
            pass

    def __enter__(self) -> Session:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._tokens.pop())
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._session_id} on {self.backend()!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Session) and other.session_id == self.session_id

    def __hash__(self) -> int:
        return hash(self._session_id)


def _streak_takes(grant: Grant, streak: StreakTerms, spec: JobSpec) -> bool:
    """Whether ``spec`` can go to a streak on ``grant``'s worker: a job that would go
    ahead there, without a per-job time limit or retries, before the session expires."""
    expires = streak.expires_at
    return (
        grant.goes_ahead(spec)
        and spec.max_execution_time is None
        and spec.max_retries == 0
        and (expires is None or time.time() < expires)
    )


def submit_again(actor: Any, session_id: str, spec: JobSpec) -> ray.ObjectRef[Any]:
    """Submit ``spec`` to its session as any new job, from this process; returns the ref
    of its result. (A streak's job whose worker died before the session heard of it.)"""
    details: SessionDetails = ray.get(actor.details.remote())
    return Session._attach(session_id, actor, details)._submit(spec)


def run_in_session(spec: JobSpec) -> Any:
    """Submit ``spec`` to its session from this process and wait for its result: a
    worker does this for a job sent to a streak that had ended (see
    :mod:`.backends._streaks`).

    Raises:
        RaySessionError: as ``result()`` of the job raises (``SessionClosedError``, say).
    """
    assert spec.session_id is not None
    try:
        actor = ray.get_actor(actor_name("session", spec.session_id), namespace=NAMESPACE)
    except ValueError as exc:
        raise ended(spec.session_id, spec.job_id, SessionState.CLOSED) from exc
    job = RuntimeJobV2(submit_again(actor, spec.session_id, spec), job_id=spec.job_id,
                       session_id=spec.session_id, actor=actor, created=time.time())  # fmt: skip
    return job.result()


def _send_ahead(last: Grant, spec: JobSpec) -> ray.ObjectRef[Any] | None:
    """Send the job to the worker of the session's last job this process read, ahead
    of its admission (see :class:`~raysession.backends.base.Ahead`): for a loop of
    small jobs the worker then has the job when the session's verdict comes, and the
    submit is the only round trip before the run. ``None`` if the worker is gone: if
    the session grants it the job anyway, the job lapses there and runs again."""
    try:
        return last.send_ahead(spec)
    except ACTOR_GONE:
        return None


class Batch(Session):
    """A session whose jobs run concurrently, up to the backend's worker count.

    The same actor and lifecycle as :class:`Session` without the one-job-at-a-time
    rule and with no ordering promise; ``usage()`` is the jobs' execution time.

    Example:
        >>> with Batch(backend=AerBackend()) as batch:  # doctest: +SKIP
        ...     jobs = [SamplerV2().run([circuit]) for circuit in circuits]
    """

    _MODE: ClassVar[Mode] = "batch"
