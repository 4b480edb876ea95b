"""The shared base of the primitives: mode resolution, options, job specs and submission."""

from __future__ import annotations

import hashlib
import pickle
import secrets
import uuid
from typing import Any, ClassVar, Generic, TypeVar

from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from ._catalog import PoolBacked
from ._job_mode import job_mode_batch
from .backends._partition import Kind, PubSpec
from .backends.base import Backend, JobSpec
from .errors import SessionClosedError, SessionExpiredError
from .job import RuntimeJobV2
from .options import EstimatorOptions, SamplerOptions
from .session import Session, current_session

OptionsT = TypeVar("OptionsT", EstimatorOptions, SamplerOptions)

ModeLike = Session | Backend


def resolve_mode(mode: object, primitive: str) -> Session | Backend:
    """The session, batch or backend a primitive submits to.

    Raises:
        ValueError: ``mode`` is none of them, or is ``None`` outside a ``with Session`` block.
    """
    if mode is None:
        session = current_session()
        if session is None:
            raise ValueError(
                f"{primitive} needs mode=: a Session, a Batch or an AerBackend, "
                "or construct it inside a `with Session(...)` / `with Batch(...)` block."
            )
        return session
    if isinstance(mode, Session | Backend):
        return mode
    if isinstance(mode, PoolBacked):
        # A service's or provider's backend object: job mode on its worker pool.
        return mode.aer_backend
    raise ValueError(
        f"{primitive}(mode={mode!r}) is not accepted: mode must be a raysession Session, "
        "Batch or backend (AerBackend, or a QiskitRuntimeService/RayProvider backend), "
        "or None inside a `with Session(...)` block."
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
        self._options: OptionsT = self._coerce_options(options)

    def _coerce_options(self, options: object) -> OptionsT:
        if options is None:
            return self._OPTIONS()  # type: ignore[return-value]
        if isinstance(options, self._OPTIONS):
            return options  # type: ignore[return-value]
        if isinstance(options, dict):
            return self._OPTIONS.model_validate(options)  # type: ignore[return-value]
        raise ValueError(
            f"options must be a {self._OPTIONS.__name__} or a dict, not {type(options).__name__}"
        )

    @property
    def mode(self) -> Session | Backend:
        """The session, batch or backend jobs are submitted to."""
        return self._mode

    @property
    def options(self) -> OptionsT:
        """The primitive's options (a frozen pydantic model)."""
        return self._options

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._mode, self._options))

    def _submit(self, pubs: list[EstimatorPub] | list[SamplerPub]) -> RuntimeJobV2:
        mode = self._mode
        if isinstance(mode, Session):
            check_execution_time(self._options, mode.max_time)
            return mode.submit(build_spec(self._KIND, pubs, self._options, mode.session_id))
        spec = build_spec(self._KIND, pubs, self._options, None)
        try:
            return job_mode_batch(mode).submit(spec)
        except (SessionClosedError, SessionExpiredError):
            # The job-mode batch closed itself while idle: start a fresh one.
            return job_mode_batch(mode, renew=True).submit(spec)


def check_execution_time(options: EstimatorOptions | SamplerOptions, max_time: float) -> None:
    """Raise ``ValueError`` unless the job's ``max_execution_time`` is below ``max_time``."""
    limit = options.max_execution_time
    if limit is not None and limit >= max_time:
        raise ValueError(
            f"max_execution_time={limit} s must be smaller than the session's max_time "
            f"of {max_time} s."
        )


def build_spec(
    kind: Kind,
    pubs: list[EstimatorPub] | list[SamplerPub],
    options: EstimatorOptions | SamplerOptions,
    session_id: str | None,
    job_id: str | None = None,
) -> JobSpec:
    """The job spec of coerced PUBs: circuits pickled once each and named by content.

    The session actor forwards the pickled circuits without unpickling them; a
    worker unpickles a circuit once and keeps it while the cache holds it.
    """
    circuits: dict[str, bytes] = {}
    by_id: dict[int, str] = {}
    specs = []
    for pub in pubs:
        key = by_id.get(id(pub.circuit))
        if key is None:
            data = pickle.dumps(pub.circuit, protocol=pickle.HIGHEST_PROTOCOL)
            key = hashlib.blake2b(data, digest_size=16).hexdigest()
            circuits[key] = data
            by_id[id(pub.circuit)] = key
        if isinstance(pub, EstimatorPub):
            specs.append(
                PubSpec(
                    key, pub.parameter_values, observables=pub.observables, precision=pub.precision
                )
            )
        else:
            specs.append(PubSpec(key, pub.parameter_values, shots=pub.shots))
    seed = options.seed_simulator
    if seed is None:
        seed = secrets.randbelow(2**31)
    return JobSpec(
        kind=kind,
        pubs=tuple(specs),
        circuits=circuits,
        seed=seed,
        chunk_size=options.chunk_size,
        run_options=dict(options.run_options),
        max_execution_time=options.max_execution_time,
        circuit_cache=options.circuit_cache,
        job_id=job_id or uuid.uuid4().hex,
        session_id=session_id,
    )
