"""The shared base of the primitives: mode resolution and options; submission is :mod:`._submit`."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Generic, TypeVar

from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers import BackendV2

from ._submit import submit_job
from .backends import AerBackend
from .backends._device import simulator_of
from .backends._partition import Kind
from .backends.base import Backend, ProvidesBackend, is_backend
from .errors import RaySessionWarning
from .job import RuntimeJobV2
from .options import EstimatorOptions, SamplerOptions
from .session import Session, current_session

OptionsT = TypeVar("OptionsT", EstimatorOptions, SamplerOptions)

ModeLike = Session | Backend


_default_backend: AerBackend | None = None


def default_backend() -> AerBackend:
    """The backend of primitives built without ``mode=`` outside a ``with Session`` block:
    one ``AerBackend()`` per process (a description; its workers are the shared pool)."""
    global _default_backend
    if _default_backend is None:
        _default_backend = AerBackend()
    return _default_backend


def resolve_mode(mode: object, primitive: str) -> Session | Backend:
    """The session, batch or backend a primitive submits to.

    ``None`` is the enclosing ``with Session(...)`` / ``with Batch(...)`` block's
    session, else job mode on :func:`default_backend`, so code written for
    ``qiskit_aer.primitives`` (``EstimatorV2(options=...)``) runs unchanged.

    Raises:
        ValueError: ``mode`` is none of these.
    """
    if mode is None:
        session = current_session()
        return default_backend() if session is None else session
    if isinstance(mode, Session) or is_backend(mode):
        return mode
    if isinstance(mode, ProvidesBackend):
        # A service's or provider's backend object: job mode on what it gives.
        return mode.raysession_backend()
    if isinstance(mode, BackendV2):
        # Any Qiskit backend, as IBM's local testing mode: simulated with its noise.
        return simulator_of(mode)
    raise ValueError(
        f"{primitive}(mode={mode!r}) is not accepted: mode must be a raysession Session, "
        "Batch or backend (AerBackend, or a QiskitRuntimeService/RayProvider backend), "
        "a Qiskit BackendV2 (simulated), or None inside a `with Session(...)` block."
    )


class BasePrimitive(Generic[OptionsT]):
    """Mode resolution, options and submission shared by EstimatorV2 and SamplerV2."""

    _OPTIONS: ClassVar[type[EstimatorOptions] | type[SamplerOptions]]
    _KIND: ClassVar[Kind]

    def __init__(
        self,
        mode: Session | Backend | None = None,
        options: OptionsT | dict[str, Any] | None = None,
    ) -> None:
        self._mode = resolve_mode(mode, type(self).__name__)
        self._options: OptionsT = self._OPTIONS.coerce(options)

    @property
    def mode(self) -> Session | Backend:
        """The session, batch or backend jobs are submitted to."""
        return self._mode

    @property
    def options(self) -> OptionsT:
        """The primitive's options: change them by attribute
        (``estimator.options.default_shots = 5000``) or with ``options.update(...)``; each
        change is validated, and a job keeps the options it was run with."""
        return self._options

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._mode, self._options))

    def _submit(self, pubs: list[EstimatorPub] | list[SamplerPub]) -> RuntimeJobV2:
        """Submit with a snapshot of the options (seeds drawn); called by ``run()`` only."""
        options = self._options.for_job()
        unsupported = options.unsupported()
        if unsupported:
            # user -> run() -> _submit(): the warning names the user's line.
            warnings.warn(
                f"{type(self).__name__} options {', '.join(unsupported)} have no effect on "
                "raysession's Aer simulator (as in qiskit-ibm-runtime's local testing mode): "
                "the job runs without them.",
                RaySessionWarning,
                stacklevel=3,
            )
        return submit_job(self._mode, self._KIND, pubs, options)
