"""RuntimeJobV2: one submitted job's handle, a Qiskit primitive job and a Ray future at once."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ray
from qiskit.primitives import BasePrimitiveJob, PrimitiveResult, PubResult
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from . import errors
from ._courier import deliver, forget_courier
from ._failures import ACTOR_GONE, ended_job, for_caller, is_job_error, recorded_error
from ._messages import JobInfo, JobMetrics, JobStatus
from ._progress import JobProgress, follow
from ._storage import StoredJob, read_job, read_result
from .errors import JobCancelledError, ResultUnavailableError, SessionNotFoundError

if TYPE_CHECKING:
    from .backends._streaks import StreakTerms
    from .backends.base import Backend, Grant, JobSpec

__all__ = ["RuntimeJobV2"]


# Granted jobs this process saw finish, by session, until its next submit to that session
# tells the session actor (which may not have seen the completion yet).
_seen_done: dict[str, list[str]] = {}
# By session: the grant of the last granted job whose result this process read, the
# streak open on its worker for this process (if any), and when. The session's next job
# from here goes to that streak, else ahead to that worker (see Grant.send_ahead), if it
# comes within AHEAD_WINDOW_S: by then the session has likely let the worker go.
_last_grant: dict[str, tuple[Grant, StreakTerms | None, float]] = {}
AHEAD_WINDOW_S = 1.0


def take_seen_done(session_id: str) -> list[str]:
    """Granted jobs of the session whose results this process has read since it last asked."""
    return _seen_done.pop(session_id, [])


def take_last_grant(session_id: str) -> tuple[Grant, StreakTerms | None] | None:
    """The grant of the session's last job whose result this process read, and the
    streak open for this process on its worker, if that was less than
    ``AHEAD_WINDOW_S`` ago (once: the next submit takes it)."""
    last = _last_grant.pop(session_id, None)
    if last is None or time.monotonic() - last[2] > AHEAD_WINDOW_S:
        return None
    return last[0], last[1]


def forget_last_grant(session_id: str) -> None:
    """This process closed or cancelled the session: its next job goes nowhere ahead."""
    _last_grant.pop(session_id, None)


def _keep_last_grant(session_id: str, grant: Grant, streak: StreakTerms | None = None) -> None:
    now = time.monotonic()
    _last_grant[session_id] = (grant, streak, now)
    if len(_last_grant) > 64:  # sessions this process stopped using
        for stale in [k for k, (_, _, t) in _last_grant.items() if now - t > AHEAD_WINDOW_S]:
            del _last_grant[stale]


def check_timeout(timeout: float | None) -> None:
    """Raise ``ValueError`` unless ``timeout`` is ``None`` or a number of seconds >= 0."""
    if timeout is not None and not timeout >= 0:
        raise ValueError(
            f"timeout must be >= 0 or None, not {timeout!r}; give the seconds to wait, "
            "or None to wait until the job ends."
        )


def check_tags(tags: object) -> list[str]:
    """``tags`` as a list of distinct strings, in their first order.

    Raises:
        TypeError: ``tags`` is not a list (or other sequence) of strings.
    """
    if isinstance(tags, str | bytes) or not isinstance(tags, Sequence):
        raise TypeError(f"Job tags must be a list of strings, not {type(tags).__name__}.")
    wrong = [tag for tag in tags if not isinstance(tag, str)]
    if wrong:
        raise TypeError(f"Job tags must be a list of strings; {wrong!r} are not strings.")
    return list(dict.fromkeys(tags))


def connection() -> tuple[int, str, str] | None:
    """This process's Ray connection: ``None`` when Ray is not connected."""
    if not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    return os.getpid(), context.get_node_id(), context.get_job_id()


class RuntimeJobV2(ray.ObjectRef, BasePrimitiveJob[PrimitiveResult[PubResult], JobStatus]):  # type: ignore[misc,type-arg]
    """The handle of a job submitted by :class:`~raysession.EstimatorV2` or
    :class:`~raysession.SamplerV2`.

    It has the methods of qiskit-ibm-runtime's ``RuntimeJobV2`` and is also a
    Ray ``ObjectRef`` of the job's :class:`~qiskit.primitives.PrimitiveResult`,
    so ``ray.get(job)``, ``ray.get([job, ...])``, ``ray.wait([...])`` and
    ``await job`` work. It pickles, so a job submitted in one task can be
    awaited in another.

    The result belongs to the process that submitted the job (Ray's ownership): it
    comes straight from the worker that ran it, or, for a job that waited in the
    queue or was split, through its node's courier (:mod:`raysession._courier`). The
    submitting process must be alive to read it; once the Ray connection it was
    made in ends (``ray.shutdown()``), the handle raises
    :class:`~raysession.ResultUnavailableError`.

    One case differs between ``job.result()`` and ``ray.get(job)``: a job whose worker
    died while running it runs again; ``result()`` and ``await job`` return the rerun's
    result, ``ray.get(job)`` raises the worker's death.

    Lifecycle: ``QUEUED`` → ``RUNNING`` → ``DONE`` | ``ERROR`` | ``CANCELLED``.

    Example:
        >>> job = estimator.run([(circuit, observable)])  # doctest: +SKIP
        >>> job.result()[0].data.evs  # doctest: +SKIP
    """

    def __init__(
        self,
        ref: ray.ObjectRef[Any],
        *,
        job_id: str,
        session_id: str | None,
        actor: Any,
        created: float,
        granted: bool = False,
        job_mode: bool = False,
        tags: Sequence[str] = (),
        grant: Grant | None = None,
    ) -> None:
        ray.ObjectRef.__init__(self, ref.binary(), ref.owner_address(), ref.call_site())
        BasePrimitiveJob.__init__(self, job_id)
        self._session_id = session_id
        self._job_mode = job_mode
        self._actor = actor
        self._created = created
        self._granted = granted
        """The ref comes straight from the worker the session granted the job."""
        self._grant = grant
        """Granted jobs in the submitting process: the grant (the next job may go ahead)."""
        self._ran_ahead = False
        """It went to its worker ahead of its admission (see ``Session._send_ahead``)."""
        self._streak: StreakTerms | None = None
        """The streak its grant's worker has open for this process (the job opened it, or
        was sent to it): the next job may go there (see :mod:`.backends._streaks`)."""
        self._in_streak: ray.ObjectRef[bool] | None = None
        """Sent to a streak: whether it ran there (else the worker submitted it to the
        session: the streak had ended, and the next job goes through the session)."""
        self._spec: JobSpec | None = None
        """Sent to a streak, in the submitting process: the job, to submit again if its
        worker dies before the session heard of it."""
        self._made_in = connection()
        self._final_info: JobInfo | None = None
        self._tags = list(tags)
        self._backend: Backend | None = None
        self._stored = False
        """Read from storage (see :func:`stored_job`): the job ended, ``_final_info`` says how."""

    def __reduce__(self) -> tuple[Any, ...]:
        ref: ray.ObjectRef[Any] = ray.ObjectRef(
            self.binary(), self.owner_address(), self.call_site()
        )
        state = (
            self._job_id,
            self._session_id,
            self._actor,
            self._created,
            self._granted,
            self._job_mode,
            tuple(self._tags),
            self._final_info if self._stored else None,
        )
        return (_rebuild, (ref, *state))

    def __repr__(self) -> str:
        return f"<RuntimeJobV2 job_id={self._job_id!r} session_id={self._session_id!r}>"

    # --------------------------------------------------------------- identity

    def job_id(self) -> str:  # type: ignore[override]  # ObjectRef.job_id is Ray's own id
        """The job's id."""
        return str(self._job_id)

    @property
    def session_id(self) -> str | None:
        """The id of the session (or batch) the job ran in; ``None`` in job mode."""
        return None if self._job_mode else self._session_id

    @property
    def creation_date(self) -> datetime:
        """When the session accepted the job (UTC)."""
        return datetime.fromtimestamp(self._created, tz=UTC)

    @property
    def tags(self) -> list[str]:
        """The job's tags: those it was submitted with, or the last :meth:`update_tags`
        made through this handle (another handle's update shows in
        ``QiskitRuntimeService.jobs()``)."""
        return list(self._tags)

    def update_tags(self, new_tags: list[str]) -> list[str]:
        """Replace the job's tags, in its session's record.

        Args:
            new_tags: The tags; duplicates are dropped.

        Returns:
            The job's tags now.

        Raises:
            TypeError: ``new_tags`` is not a list of strings.
            SessionNotFoundError: the job's session has ended (its records went with it).
        """
        tags = check_tags(new_tags)
        self._tags = list(self._ask("update_tags", self._job_id, tags))
        return self.tags

    def backend(self) -> Backend:
        """The raysession backend the job ran on (an :class:`~raysession.AerBackend`
        for Aer): the backend of the job's session, or of its job-mode batch.

        A ``raysession.ibm`` front end's backend object (a Qiskit ``BackendV2``) gives
        the same with its ``raysession_backend()``.

        Raises:
            SessionNotFoundError: the job's session has ended and this handle never
                asked for the backend before.
        """
        if self._backend is None:
            self._backend = self._ask("backend")
        return self._backend

    def _ask(self, method: str, *args: Any) -> Any:
        """Call the session actor's ``method`` about this job's session."""
        self._check_connection()
        try:
            if self._actor is None:  # read from storage: its session ended
                raise RayActorError()
            return ray.get(getattr(self._actor, method).remote(*args))
        except (*ACTOR_GONE, RayTaskError) as exc:
            if isinstance(exc, RayTaskError) and not isinstance(exc.cause, KeyError):
                raise
            raise SessionNotFoundError(
                f"Job {self._job_id}: session {self._session_id} has ended or no longer "
                "keeps the job; its records went with it.",
                session_id=self._session_id,
                job_id=self._job_id,
            ) from exc

    # ----------------------------------------------------------------- status

    def _check_connection(self) -> None:
        if connection() != self._made_in:
            raise ResultUnavailableError(
                f"Job {self._job_id} was submitted over an earlier Ray connection, which "
                "ended (ray.shutdown()); its result and records went with it.",
                session_id=self._session_id,
                job_id=self._job_id,
            )

    def _info(self) -> JobInfo:
        self._check_connection()
        if self._final_info is not None:
            return self._final_info
        # A granted job's result reaches this process before its completion reaches the
        # session actor: once the result is here, ask the actor to wait for the record.
        finished = self._granted and bool(ray.wait([self], timeout=0)[0])
        try:
            info: JobInfo = ray.get(self._actor.job_info.remote(self._job_id, finished))
        except (*ACTOR_GONE, RayTaskError):
            # The session actor exits once its results are handed over.
            info = self._info_after_session()
        if info.status.is_final:
            self._final_info = info
        return info

    def _info_after_session(self) -> JobInfo:
        recorded = ended_job(self._job_id)
        if recorded is not None:
            return recorded
        ready, _ = ray.wait([self], timeout=0)
        if not ready:
            raise ResultUnavailableError(
                f"Job {self._job_id}: its session {self._session_id} is gone and the job "
                "never finished.",
                session_id=self._session_id,
                job_id=self._job_id,
            )
        status, message, kind = JobStatus.DONE, None, None
        try:
            ray.get(self)
        except RayError as exc:
            error = for_caller(exc, job_id=self._job_id, session_id=self._session_id)
            status, message, kind = JobStatus.ERROR, str(error), type(error).__name__
        return JobInfo(
            job_id=self._job_id,
            session_id=self._session_id or "",
            status=status,
            error_message=message,
            error_type=kind,
            metrics=JobMetrics(created=self._created, sequence=-1),
        )

    def status(self) -> JobStatus:
        """``"QUEUED"``, ``"RUNNING"``, ``"DONE"``, ``"ERROR"`` or ``"CANCELLED"``.

        The value equals both these strings and qiskit's
        :class:`~qiskit.providers.JobStatus` members.

        Raises:
            ResultUnavailableError: the job belongs to an earlier Ray connection, or its
                session is gone and it never finished.
        """
        return self._info().status

    def done(self) -> bool:
        """True if the job finished with a result."""
        return self.status() is JobStatus.DONE

    def running(self) -> bool:
        """True while the job runs on the backend."""
        return self.status() is JobStatus.RUNNING

    def cancelled(self) -> bool:
        """True if the job was cancelled."""
        return self.status() is JobStatus.CANCELLED

    def errored(self) -> bool:
        """True if the job failed."""
        return self.status() is JobStatus.ERROR

    def in_final_state(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.status().is_final

    def error_message(self) -> str | None:
        """Why the job failed, or ``None``."""
        return self._info().error_message

    def usage(self) -> float:
        """Seconds the job ran (qiskit-ibm-runtime's quantum seconds): from its start on
        the backend to its end; 0.0 before it ends. A Batch's usage is the sum of these.

        Raises:
            ResultUnavailableError: as :meth:`status`.
        """
        return self._info().metrics.execution_s or 0.0

    def metrics(self) -> dict[str, Any]:
        """Timestamps (ISO 8601, UTC), usage, and where and how the job ran.

        Returns:
            ``timestamps`` (created, queued, running, finished), ``usage``
            (``seconds`` and ``quantum_seconds``, both :meth:`usage`), ``sequence`` (its
            place in the session's FIFO order), ``seed`` (the job's seed: the one given,
            or the one drawn for it), ``num_chunks``, ``chunks`` (per chunk in order:
            ``index``, ``seed``, ``worker``, ``execution_s``, the seconds it ran on its
            worker), ``chunk_seeds``, ``workers`` (in the order chunks finished),
            ``retries`` (chunks run again because their worker died), ``num_attempts``
            and ``attempts`` (per run of the job, in order: ``attempt`` from 1,
            ``started``, ``finished``, and ``error_type``/``error_message``, ``None``
            for a run that succeeded; a job runs again after a transient failure when
            ``options.raysession.max_retries`` allows, and the chunk fields describe its
            last attempt). The results' metadata is exactly Aer's, so these are where
            raysession reports itself.

        Raises:
            ResultUnavailableError: as :meth:`status`.
        """
        metrics = self._info().metrics

        def iso(ts: float | None) -> str | None:
            return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()

        return {
            "timestamps": {
                "created": iso(metrics.created),
                "queued": iso(metrics.queued),
                "running": iso(metrics.running),
                "finished": iso(metrics.finished),
            },
            "usage": {
                "seconds": metrics.execution_s or 0.0,
                "quantum_seconds": metrics.execution_s or 0.0,
            },
            "sequence": metrics.sequence,
            "seed": metrics.seed,
            "num_chunks": metrics.num_chunks,
            "chunks": [
                {"index": index, "seed": seed, "worker": worker, "execution_s": seconds}
                for index, (seed, worker, seconds) in enumerate(
                    zip(
                        metrics.chunk_seeds,
                        metrics.chunk_workers,
                        metrics.chunk_execution_s,
                        strict=True,
                    )
                )
            ],
            "chunk_seeds": list(metrics.chunk_seeds),
            "retries": metrics.retries,
            "workers": list(metrics.workers),
            "num_attempts": len(metrics.attempts),
            "attempts": [
                {
                    "attempt": attempt.attempt,
                    "started": iso(attempt.started),
                    "finished": iso(attempt.finished),
                    "error_type": attempt.error_type,
                    "error_message": attempt.error_message,
                }
                for attempt in metrics.attempts
            ],
        }

    def wait_for_final_state(self, timeout: float | None = None) -> None:
        """Wait until the job is done, failed or cancelled (without reading its result).

        Args:
            timeout: Seconds to wait; ``None`` waits until the job ends.

        Raises:
            JobTimeoutError: ``timeout`` elapsed first; the job goes on.
            ValueError: ``timeout`` is negative.
            ResultUnavailableError: as :meth:`status`.
        """
        check_timeout(timeout)
        self._check_connection()
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        # The job's ref resolves once it ends (a cancelled or failed job's with its error).
        ready, _ = ray.wait([self], timeout=left())
        while ready:
            if self._final_info is not None:
                return
            try:
                # Waits (a few seconds at most) in the session for the job's end: a job
                # whose granted worker died runs again after its ref resolved.
                info: JobInfo = ray.get(
                    self._actor.job_info.remote(self._job_id, True), timeout=left()
                )
            except GetTimeoutError:
                break
            except (*ACTOR_GONE, RayTaskError):
                info = self._info_after_session()
            if info.status.is_final:
                self._final_info = info
                return
            if left() == 0.0:
                break
        raise errors.JobTimeoutError(
            f"Job {self._job_id} did not reach a final state within {timeout} s; "
            "it is still running.",
            session_id=self._session_id,
            job_id=self._job_id,
        )

    # ---------------------------------------------------------------- actions

    def progress(self) -> JobProgress:
        """How far the job is: chunks done of chunks planned (one for a job not split).

        Raises:
            ResultUnavailableError: as :meth:`status`.
        """
        info = self._info()
        metrics = info.metrics
        total = max(1, metrics.num_chunks)
        if info.status is JobStatus.DONE:
            return JobProgress(total, total)
        return JobProgress(sum(1 for worker in metrics.chunk_workers if worker), total)

    def result(
        self, timeout: float | None = None, *, progress: bool = False
    ) -> PrimitiveResult[PubResult]:
        """Wait for the job and return its result.

        Args:
            timeout: Seconds to wait; ``None`` waits until the job finishes.
            progress: Draw a progress bar (chunks done) while waiting, in a terminal or
                a notebook; nothing is drawn when the output is not interactive.

        Raises:
            JobTimeoutError: ``timeout`` elapsed; the job goes on.
            JobFailedError: the job failed; ``__cause__`` is the worker's error.
            ExecutionTimeoutError: the job ran past its ``max_execution_time``.
            JobCancelledError: the job was cancelled.
            BackendUnavailableError: the session actor or the workers died.
            ResultUnavailableError: the job belongs to an earlier Ray connection.
            RuntimeError: called inside a running event loop; use ``await job``.
            ValueError: ``timeout`` is negative.
        """
        check_timeout(timeout)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "RuntimeJobV2.result() blocks and cannot run inside an event loop; use `await job`."
            )
        self._check_connection()
        final = self._final_info
        if self._stored and final is not None and final.status is not JobStatus.DONE:
            raise recorded_error(final) from None
        if progress and final is None:
            follow(self, self.progress, f"job {self._job_id[:8]}", timeout)
        try:
            if self._in_streak is not None:  # one get for both: each costs the caller
                ran, value = ray.get([self._in_streak, self], timeout=timeout)
                self._seen(ran)
            else:
                value = ray.get(self, timeout=timeout)
                self._seen()
        except GetTimeoutError as exc:
            raise errors.JobTimeoutError(
                f"Job {self._job_id} did not finish within {timeout} s; it is still running.",
                session_id=self._session_id,
                job_id=self._job_id,
            ) from exc
        except RayError as exc:
            rerun = self._rerun(exc)
            try:
                value = ray.get(rerun)
            except RayError as again:
                value = self._from_storage(again)
        return value

    def _from_storage(self, exc: RayError) -> PrimitiveResult[PubResult]:
        """The stored result of a job whose refs are gone for a reason outside the job
        (its session actor exited, or the result's owner died); else the job's error."""
        stored = None if is_job_error(exc) else read_job(self._job_id)
        if stored is not None and stored.info.status is JobStatus.DONE:
            value: PrimitiveResult[PubResult] = read_result(stored)
            return value
        error = self._error(exc)
        raise error from error.__cause__

    def _seen(self, in_streak: bool | None = None) -> None:
        """Note a granted job whose result came from its worker, for the next submit (its
        session settles it first), and its grant (the next job may go ahead to it, or to
        the streak open there; ``in_streak``: whether the job ran in it, if known)."""
        if self._grant is not None and self._session_id is not None:
            if self._in_streak is None:  # (a streak's jobs reach the session with its reports)
                _seen_done.setdefault(self._session_id, []).append(self._job_id)
            streak = self._streak
            if in_streak is None and self._in_streak is not None:
                in_streak = ray.get(self._in_streak)
            if in_streak is False:
                streak = None  # it ended: the next job goes to the session (and may reopen it)
            _keep_last_grant(self._session_id, self._grant, streak)

    def __await__(self) -> Generator[Any, None, PrimitiveResult[PubResult]]:
        self._check_connection()
        try:
            value: PrimitiveResult[PubResult] = yield from super().__await__()
            self._seen()
        except RayError as exc:
            rerun = self._rerun(exc)
            try:
                value = yield from rerun.__await__()
            except RayError as again:
                value = self._from_storage(again)
        return value

    def _rerun(self, exc: RayError) -> ray.ObjectRef[PrimitiveResult[PubResult]]:
        """Where the job's result is after its own ref failed for a reason outside the
        job: a granted job whose worker was lost ran again in the session (which also
        knows if it was cancelled or ran out of time instead); a courier that exited
        while delivering is replaced. The job's own errors are final."""
        if is_job_error(exc):
            error = self._error(exc)
            raise error from error.__cause__
        assert self._session_id is not None  # a courier delivers session jobs only
        forget_courier()  # it may have exited since this process last used it: look again
        if self._spec is not None and self._session_forgot():
            # A job of a streak whose worker died before the session heard of it: it was
            # never the session's; it is submitted now, as any job.
            from .session import submit_again

            return submit_again(self._actor, self._session_id, self._spec)
        return deliver(self._session_id, self._job_id)

    def _session_forgot(self) -> bool:
        """Whether the job's session has no record of it (after this process saw the
        worker of the job's streak die: see ``SessionActor.forget_lost``)."""
        try:
            forgot: bool = ray.get(self._actor.forget_lost.remote(self._job_id))
        except ACTOR_GONE:
            return False  # the session is gone: its storage may have the job
        return forgot

    def _error(self, exc: RayError) -> BaseException:
        if not is_job_error(exc):
            recorded = ended_job(self._job_id)
            if recorded is not None and recorded.status is JobStatus.CANCELLED:
                return JobCancelledError(
                    f"Job {self._job_id} was cancelled; it has no result.",
                    session_id=self._session_id,
                    job_id=self._job_id,
                )
            if recorded is not None and recorded.error_type is not None:
                return recorded_error(recorded)
        return for_caller(exc, job_id=self._job_id, session_id=self._session_id)

    def cancel(self) -> bool:
        """Cancel the job if it has not finished; returns whether it was cancelled
        (``False`` for a finished job, or one whose session or connection is gone)."""
        if connection() != self._made_in:
            return False
        if ray.wait([self], timeout=0)[0]:
            # Its result (or error) is here: finished, though a granted job's completion
            # may not have reached the session actor yet (which would call it running).
            return False
        try:
            cancelled: bool = ray.get(self._actor.cancel_job.remote(self._job_id))
        except (*ACTOR_GONE, RayTaskError):
            return False
        if cancelled:
            self._final_info = None
        return cancelled


def stored_job(stored: StoredJob, actor: Any = None, info: JobInfo | None = None) -> RuntimeJobV2:
    """The handle of a finished job read from storage: its record (or ``info``, the live
    session's newer one), and its result (read now and put in this process's object
    store) if it has one.

    Raises:
        ResultUnavailableError: the job is DONE but its result files are gone.
    """
    info = info or stored.info
    value = read_result(stored) if info.status is JobStatus.DONE else None
    job = RuntimeJobV2(
        ray.put(value),
        job_id=info.job_id,
        session_id=info.session_id,
        actor=actor,
        created=info.metrics.created,
        tags=info.tags,
    )
    job._final_info, job._stored = info, True
    return job


def _rebuild(
    ref: ray.ObjectRef[Any],
    job_id: str,
    session_id: str | None,
    actor: Any,
    created: float,
    granted: bool,
    job_mode: bool,
    tags: tuple[str, ...] = (),
    stored: JobInfo | None = None,
) -> RuntimeJobV2:
    job = RuntimeJobV2(
        ref,
        job_id=job_id,
        session_id=session_id,
        actor=actor,
        created=created,
        granted=granted,
        job_mode=job_mode,
        tags=tags,
    )
    if stored is not None:
        job._final_info, job._stored = stored, True
    return job
