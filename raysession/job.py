"""RuntimeJobV2: one submitted job's handle, a Qiskit primitive job and a Ray future at once."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import ray
from qiskit.primitives import BasePrimitiveJob, PrimitiveResult, PubResult
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from ._records import JobInfo, JobMetrics, JobStatus
from .errors import BackendUnavailableError, JobCancelledError, JobTimeoutError, RaySessionError

__all__ = ["RuntimeJobV2"]


class RuntimeJobV2(ray.ObjectRef, BasePrimitiveJob[PrimitiveResult[PubResult], JobStatus]):  # type: ignore[misc,type-arg]
    """The handle of a job submitted by :class:`~raysession.EstimatorV2` or
    :class:`~raysession.SamplerV2`.

    It has the methods of qiskit-ibm-runtime's ``RuntimeJobV2`` and is also a
    Ray ``ObjectRef`` of the job's :class:`~qiskit.primitives.PrimitiveResult`,
    so ``ray.get(job)``, ``ray.get([job, ...])``, ``ray.wait([...])`` and
    ``await job`` work. It pickles, so a job submitted in one task can be
    awaited in another (the process that submitted it must still be alive:
    it owns the result).

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
    ) -> None:
        ray.ObjectRef.__init__(self, ref.binary(), ref.owner_address(), ref.call_site())
        BasePrimitiveJob.__init__(self, job_id)
        self._session_id = session_id
        self._actor = actor
        self._created = created
        self._final_info: JobInfo | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        ref: ray.ObjectRef[Any] = ray.ObjectRef(
            self.binary(), self.owner_address(), self.call_site()
        )
        state = (self._job_id, self._session_id, self._actor, self._created)
        return (_rebuild, (ref, *state))

    def __repr__(self) -> str:
        return f"<RuntimeJobV2 job_id={self._job_id!r} session_id={self._session_id!r}>"

    # --------------------------------------------------------------- identity

    def job_id(self) -> str:  # type: ignore[override]  # ObjectRef.job_id is Ray's own id
        """The job's id."""
        return str(self._job_id)

    @property
    def session_id(self) -> str | None:
        """The id of the session (or batch) the job ran in."""
        return self._session_id

    @property
    def creation_date(self) -> datetime:
        """When the session accepted the job (UTC)."""
        return datetime.fromtimestamp(self._created, tz=UTC)

    # ----------------------------------------------------------------- status

    def _info(self) -> JobInfo:
        if self._final_info is not None:
            return self._final_info
        try:
            info: JobInfo = ray.get(self._actor.job_info.remote(self._job_id))
        except (RayActorError, RayTaskError) as exc:
            # The session actor exits once its results are handed over: ask the result itself.
            info = self._info_from_result(exc)
        if info.status.is_final:
            self._final_info = info
        return info

    def _info_from_result(self, cause: BaseException) -> JobInfo:
        ready, _ = ray.wait([self], timeout=0)
        if not ready:
            raise BackendUnavailableError(
                f"Job {self._job_id}: its session {self._session_id} is gone and the job "
                "never finished.",
                session_id=self._session_id,
                job_id=self._job_id,
            ) from cause
        status, message = JobStatus.DONE, None
        try:
            ray.get(self)
        except JobCancelledError:
            status = JobStatus.CANCELLED
        except (RaySessionError, RayError) as exc:
            status, message = JobStatus.ERROR, str(_translate(exc, self._job_id))
        metrics = JobMetrics(created=self._created, sequence=-1)
        return JobInfo(
            job_id=self._job_id,
            session_id=self._session_id or "",
            status=status,
            error_message=message,
            metrics=metrics,
        )

    def status(self) -> JobStatus:
        """``"QUEUED"``, ``"RUNNING"``, ``"DONE"``, ``"ERROR"`` or ``"CANCELLED"``.

        The value equals both these strings and qiskit's
        :class:`~qiskit.providers.JobStatus` members.
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

    def metrics(self) -> dict[str, Any]:
        """Timestamps (ISO 8601, UTC), usage, sequence number and workers of the job."""
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
            "usage": {"seconds": metrics.execution_s or 0.0},
            "sequence": metrics.sequence,
            "num_chunks": metrics.num_chunks,
            "retries": metrics.retries,
            "workers": list(metrics.workers),
        }

    # ---------------------------------------------------------------- actions

    def result(self, timeout: float | None = None) -> PrimitiveResult[PubResult]:
        """Wait for the job and return its result.

        Args:
            timeout: Seconds to wait; ``None`` waits until the job finishes.

        Raises:
            JobTimeoutError: ``timeout`` elapsed; the job goes on.
            JobFailedError: the job failed; ``__cause__`` is the worker's error.
            JobCancelledError: the job was cancelled.
            BackendUnavailableError: the session actor or the workers died.
            RuntimeError: called inside a running event loop; use ``await job``.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "RuntimeJobV2.result() blocks and cannot run inside an event loop; use `await job`."
            )
        try:
            value: PrimitiveResult[PubResult] = ray.get(self, timeout=timeout)
        except GetTimeoutError as exc:
            raise JobTimeoutError(
                f"Job {self._job_id} did not finish within {timeout} s; it is still running.",
                session_id=self._session_id,
                job_id=self._job_id,
            ) from exc
        except RayError as exc:
            error = _translate(exc, self._job_id)
            raise error from error.__cause__
        return value

    def __await__(self) -> Generator[Any, None, PrimitiveResult[PubResult]]:
        try:
            value: PrimitiveResult[PubResult] = yield from super().__await__()
        except RayError as exc:
            error = _translate(exc, self._job_id)
            raise error from error.__cause__
        return value

    def cancel(self) -> bool:
        """Cancel the job if it has not finished; returns whether it was cancelled."""
        try:
            cancelled: bool = ray.get(self._actor.cancel_job.remote(self._job_id))
        except (RayActorError, RayTaskError):
            return False
        if cancelled:
            self._final_info = None
        return cancelled


def _translate(exc: BaseException, job_id: str) -> BaseException:
    """Our error for what ``ray.get`` raised: the cause of a task error, or BackendUnavailable."""
    if isinstance(exc, RayTaskError):
        cause = exc.cause
        if isinstance(cause, RaySessionError):
            return cause
        if isinstance(cause, BaseException) and not isinstance(cause, RayError):
            return cause
    if isinstance(exc, RaySessionError):
        return exc
    error = BackendUnavailableError(
        f"Job {job_id}: its session or workers died ({type(exc).__name__}: {exc}).",
        job_id=job_id,
    )
    error.__cause__ = exc
    return error


def _rebuild(
    ref: ray.ObjectRef[Any], job_id: str, session_id: str | None, actor: Any, created: float
) -> RuntimeJobV2:
    return RuntimeJobV2(ref, job_id=job_id, session_id=session_id, actor=actor, created=created)
