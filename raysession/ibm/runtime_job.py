"""RuntimeJob: the handle of a job run through the older interfaces (``backend.run``, V1
primitives), a Qiskit ``JobV1`` and a Ray future of its converted result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray
from qiskit.primitives import PrimitiveResult, PubResult
from qiskit.providers import JobV1
from ray.exceptions import RayError

from .._messages import JobStatus
from ..errors import JobTimeoutError, RaySessionError
from ..job import RuntimeJobV2

__all__ = ["RuntimeJob"]

Converter = Callable[[PrimitiveResult[PubResult]], Any]


def _convert(converter: Converter, value: PrimitiveResult[PubResult]) -> Any:
    return converter(value)


# The conversion of a failed job fails at once (its input failed); this only bounds a stall.
_RETRIEVE_TIMEOUT_S = 5.0

# num_cpus=0: converting counts is light and must never wait for a CPU held by the workers.
_convert_task = ray.remote(num_cpus=0)(_convert)


class RuntimeJob(ray.ObjectRef, JobV1):  # type: ignore[misc, type-arg]
    """The handle of a job submitted by ``backend.run`` or a V1 primitive
    (:class:`~raysession.Estimator`, :class:`~raysession.Sampler`).

    It mirrors qiskit-ibm-runtime's ``RuntimeJob`` (a Qiskit ``JobV1``):
    ``job_id()``, ``status()``, ``result()``, ``cancel()``, ``backend()``,
    ``session_id``. Underneath, the job is a raysession V2 job
    (:attr:`job_v2`); ``result()`` converts its ``PrimitiveResult`` into the
    older type (``Result``, ``EstimatorResult`` or ``SamplerResult``). The
    handle is also a Ray ``ObjectRef`` of that converted result, computed by a
    small Ray task, so ``ray.get(job)`` and ``await job`` return what
    ``result()`` returns. It pickles.

    Lifecycle: ``QUEUED`` → ``RUNNING`` → ``DONE`` | ``ERROR`` | ``CANCELLED``.

    Example:
        >>> job = backend.run(bell)  # doctest: +SKIP
        >>> job.result().get_counts()  # doctest: +SKIP
        {'00': 2011, '11': 1989}
    """

    def __init__(
        self,
        job: RuntimeJobV2,
        converter: Converter,
        *,
        backend: Any = None,
        ref: ray.ObjectRef[Any] | None = None,
    ) -> None:
        if ref is None:
            ref = _convert_task.remote(converter, job)
        ray.ObjectRef.__init__(self, ref.binary(), ref.owner_address(), ref.call_site())
        JobV1.__init__(self, backend, job.job_id())
        self._job = job
        self._converter = converter

    def __reduce__(self) -> tuple[Any, ...]:
        ref: ray.ObjectRef[Any] = ray.ObjectRef(
            self.binary(), self.owner_address(), self.call_site()
        )
        return (_rebuild, (self._job, self._converter, self.backend(), ref))

    def __repr__(self) -> str:
        return f"<RuntimeJob job_id={self.job_id()!r} session_id={self.session_id!r}>"

    def job_id(self) -> str:  # type: ignore[override]  # ObjectRef.job_id is Ray's own id
        """The job's id."""
        return self._job.job_id()

    @property
    def job_v2(self) -> RuntimeJobV2:
        """The raysession V2 job this job runs as."""
        return self._job

    @property
    def session_id(self) -> str | None:
        """The id of the session (or batch) the job ran in."""
        return self._job.session_id

    def submit(self) -> None:
        """Not supported: a job is submitted when it is created.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError("job.submit() is not supported; jobs start when run() returns.")

    def status(self) -> JobStatus:
        """``"QUEUED"``, ``"RUNNING"``, ``"DONE"``, ``"ERROR"`` or ``"CANCELLED"``; equal to
        both these strings and qiskit's :class:`~qiskit.providers.JobStatus` members."""
        return self._job.status()

    def error_message(self) -> str | None:
        """Why the job failed, or ``None``."""
        return self._job.error_message()

    def metrics(self) -> dict[str, Any]:
        """Timestamps, usage, sequence number and workers of the job."""
        return self._job.metrics()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job and return its result in the older type.

        Args:
            timeout: Seconds to wait; ``None`` waits until the job finishes.

        Raises:
            JobTimeoutError: ``timeout`` elapsed; the job goes on.
            JobFailedError: the job failed.
            JobCancelledError: the job was cancelled.
            BackendUnavailableError: the session actor or the workers died.
        """
        try:
            value = self._job.result(timeout=timeout)
        except JobTimeoutError:
            raise
        except RaySessionError:
            self._retrieve_failure()
            raise
        return self._converter(value)

    def _retrieve_failure(self) -> None:
        # The conversion task failed with the job; fetching its error marks it handled, so
        # Ray does not log it as an unhandled error when this handle goes away.
        try:
            ray.get(self, timeout=_RETRIEVE_TIMEOUT_S)
        except (RayError, RaySessionError):
            pass

    def cancel(self) -> bool:
        """Cancel the job if it has not finished; returns whether it was cancelled."""
        return self._job.cancel()


def _rebuild(
    job: RuntimeJobV2, converter: Converter, backend: Any, ref: ray.ObjectRef[Any]
) -> RuntimeJob:
    return RuntimeJob(job, converter, backend=backend, ref=ref)
