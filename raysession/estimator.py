"""EstimatorV2: Qiskit's estimator primitive, run in a raysession session on Aer workers."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from qiskit.primitives import BaseEstimatorV2
from qiskit.primitives.containers import EstimatorPubLike
from qiskit.providers import BackendV2

from ._primitive import BasePrimitive
from ._pub_checks import coerce_pubs, has_measurements
from .backends.base import Backend
from .errors import RaySessionWarning
from .job import RuntimeJobV2
from .options import EstimatorOptions
from .session import Session

__all__ = ["EstimatorV2"]


class EstimatorV2(BasePrimitive[EstimatorOptions], BaseEstimatorV2):  # type: ignore[misc]
    """Estimates expectation values of observables on circuits, in a session on Ray.

    PUBs are coerced and validated here, in the caller's process, with Qiskit's
    own :meth:`EstimatorPub.coerce`; the job then runs on the session's Aer
    workers. Results equal ``qiskit_aer.primitives.EstimatorV2``'s: with
    precision 0 the exact expectation values, otherwise values drawn with
    standard error ``precision`` from a seeded generator.

    Args:
        mode: A :class:`~raysession.Session`, :class:`~raysession.Batch`, an
            :class:`~raysession.AerBackend` or any Qiskit ``BackendV2`` (job mode, a
            device simulated with its noise); ``None`` binds to the enclosing
            ``with Session(...)`` block, else runs in job mode on a default
            ``AerBackend()``, as ``qiskit_aer.primitives`` run on ``AerSimulator()``.
        options: :class:`~raysession.EstimatorOptions` (qiskit-ibm-runtime's V2 option
            tree), a dict of it, or ``qiskit_aer.primitives.EstimatorV2``'s options dict
            (``default_precision``, ``backend_options``, ``run_options``).

    Raises:
        ValueError: ``mode`` or ``options`` is invalid.

    Example:
        >>> with Session(backend=AerBackend()):  # doctest: +SKIP
        ...     estimator = EstimatorV2(options={"default_precision": 0})
        ...     evs = estimator.run([(circuit, observable, values)]).result()[0].data.evs
    """

    _OPTIONS = EstimatorOptions
    _KIND = "estimator"

    def __init__(
        self,
        mode: Session | Backend | BackendV2 | None = None,
        options: EstimatorOptions | dict[str, Any] | None = None,
    ) -> None:
        BasePrimitive.__init__(self, mode, options)

    def run(
        self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None
    ) -> RuntimeJobV2:
        """Submit PUBs ``(circuit, observables[, parameter_values[, precision]])``.

        Args:
            pubs: Anything Qiskit's ``EstimatorPub.coerce`` accepts.
            precision: Standard error for PUBs that give none; default from options.

        Returns:
            The job's handle.

        Raises:
            ValueError, TypeError: a PUB is invalid (raised here, before anything is queued):
                Qiskit's coercion error with the PUB's index and the PUB's form added, or a
                parameter value or precision that is NaN, infinite or negative.
            SessionClosedError, SessionExpiredError: the session takes no new jobs.
            QueueFullError: the session's queue is at its cap of jobs or input bytes (after
                waiting the session's ``queue_wait``, if it has one).

        Warns:
            RaySessionWarning: a circuit has measurements: they are applied and collapse
                the state, as in ``qiskit_aer.primitives.EstimatorV2``.
            RaySessionWarning: once, naming every option set that a simulator ignores
                (``resilience_level``, ``twirling.*``, ...); the job runs without them.
        """
        if precision is None:
            precision = self.options.precision
        coerced = coerce_pubs("estimator", pubs, precision)
        for index, pub in enumerate(coerced):
            if has_measurements(pub.circuit):
                warnings.warn(
                    f"PUB {index}'s circuit has measurements: the estimator does not ignore "
                    "them (as qiskit_aer.primitives.EstimatorV2, it applies them, collapsing "
                    "the state, so a Bell state's <XX> is 0, not 1); remove them "
                    "(circuit.remove_final_measurements()) to estimate the state itself.",
                    RaySessionWarning,
                    stacklevel=2,
                )
        return self._submit(coerced)
