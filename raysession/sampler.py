"""SamplerV2: Qiskit's sampler primitive, run in a raysession session on Aer workers."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from qiskit.primitives import BaseSamplerV2
from qiskit.primitives.containers import SamplerPubLike
from qiskit.providers import BackendV2

from ._primitive import BasePrimitive
from ._pub_checks import coerce_pubs
from .backends.base import Backend
from .job import RuntimeJobV2
from .options import SamplerOptions
from .session import Session

__all__ = ["SamplerV2"]


class SamplerV2(BasePrimitive[SamplerOptions], BaseSamplerV2):  # type: ignore[misc]
    """Samples measurement outcomes of circuits, in a session on Ray.

    PUBs are coerced and validated here, in the caller's process, with Qiskit's
    own :meth:`SamplerPub.coerce`; the job then runs on the session's Aer
    workers. Results have one :class:`~qiskit.primitives.BitArray` per
    classical register and, for a seeded job run as one chunk, the same bits as
    ``qiskit_aer.primitives.SamplerV2`` with that seed.

    Args:
        mode: A :class:`~raysession.Session`, :class:`~raysession.Batch`, an
            :class:`~raysession.AerBackend` or any Qiskit ``BackendV2`` (job mode, a
            device simulated with its noise); ``None`` binds to the enclosing
            ``with Session(...)`` block, else runs in job mode on a default
            ``AerBackend()``, as ``qiskit_aer.primitives`` run on ``AerSimulator()``.
        options: :class:`~raysession.SamplerOptions` (qiskit-ibm-runtime's V2 option
            tree), a dict of it, or ``qiskit_aer.primitives.SamplerV2``'s options dict
            (``default_shots``, ``backend_options``, ``run_options``).

    Raises:
        ValueError: ``mode`` or ``options`` is invalid.

    Example:
        >>> sampler = SamplerV2(mode=backend, options={"default_shots": 1000})  # doctest: +SKIP
        >>> sampler.run([bell]).result()[0].data.meas.get_counts()  # doctest: +SKIP
    """

    _OPTIONS = SamplerOptions
    _KIND = "sampler"

    def __init__(
        self,
        mode: Session | Backend | BackendV2 | None = None,
        options: SamplerOptions | dict[str, Any] | None = None,
    ) -> None:
        BasePrimitive.__init__(self, mode, options)

    def run(self, pubs: Iterable[SamplerPubLike], *, shots: int | None = None) -> RuntimeJobV2:
        """Submit PUBs ``(circuit[, parameter_values[, shots]])``.

        Args:
            pubs: Anything Qiskit's ``SamplerPub.coerce`` accepts.
            shots: Shots for PUBs that give none; default from options.

        Returns:
            The job's handle.

        Raises:
            ValueError, TypeError: a PUB is invalid (raised here, before anything is queued).
            SessionClosedError, SessionExpiredError: the session takes no new jobs.
            QueueFullError: the session's queue is at its cap of jobs or input bytes (after
                waiting the session's ``queue_wait``, if it has one).

        Warns:
            RaySessionWarning: once, naming every option set that a simulator ignores
                (``resilience_level``, ``twirling.*``, ...); the job runs without them.
        """
        if shots is None:
            shots = self.options.default_shots
        coerced = coerce_pubs("sampler", pubs, shots)
        for index, pub in enumerate(coerced):
            if not pub.circuit.cregs:
                warnings.warn(
                    f"The {index}-th pub's circuit has no output classical registers and so "
                    "the result will be empty. Did you mean to add measurement instructions?",
                    UserWarning,
                    stacklevel=2,
                )
        return self._submit(coerced)
