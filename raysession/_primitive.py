"""The shared base of the primitives: mode resolution, options, job specs and submission."""

from __future__ import annotations

import threading
import uuid
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from .backends.base import Backend, JobSpec
from .backends._partition import Kind, Pub
from .errors import SessionClosedError, SessionExpiredError
from .job import RuntimeJobV2
from .options import EstimatorOptions, SamplerOptions
from .session import Batch, Session, current_session

OptionsT = TypeVar("OptionsT", EstimatorOptions, SamplerOptions)

ModeLike = Session | Backend

_job_mode_lock = threading.Lock()
_job_mode_batches: dict[str, Batch] = {}


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
    raise ValueError(
        f"{primitive}(mode={mode!r}) is not accepted: mode must be a raysession Session, "
        "Batch or backend (AerBackend), or None inside a `with Session(...)` block."
    )


def job_mode_batch(backend: Backend, *, renew: bool = False) -> Batch:
    """This process's batch that runs job-mode jobs (``mode=backend``) on ``backend``.

    Job mode has no session to the user; underneath, jobs go through one batch
    per backend and process, which closes itself when idle and is renewed here.
    """
    with _job_mode_lock:
        batch = _job_mode_batches.get(backend.backend_id)
        if batch is None or renew:
            batch = Batch(backend)
            _job_mode_batches[backend.backend_id] = batch
        return batch


class BasePrimitive(Generic[OptionsT]):
    """Mode resolution, options and submission shared by EstimatorV2 and SamplerV2."""

    _OPTIONS: ClassVar[type[EstimatorOptions] | type[SamplerOptions]]
    _KIND: ClassVar[Kind]

    def __init__(
        self, mode: Session | Backend | None = None, options: OptionsT | dict[str, Any] | None = None
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

    def _submit(self, pubs: list[Pub]) -> RuntimeJobV2:
        options = self._options
        mode = self._mode
        if isinstance(mode, Session) and options.max_execution_time is not None:
            if options.max_execution_time >= mode.max_time:
                raise ValueError(
                    f"max_execution_time={options.max_execution_time} s must be smaller than "
                    f"the session's max_time of {mode.max_time} s."
                )
        seed = options.seed_simulator
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        spec = JobSpec(
            kind=self._KIND,
            pubs=tuple(pubs),
            seed=seed,
            chunk_size=options.chunk_size,
            run_options=dict(options.run_options),
            max_execution_time=options.max_execution_time,
            job_id=uuid.uuid4().hex,
            session_id=mode.session_id if isinstance(mode, Session) else None,
        )
        if isinstance(mode, Session):
            return mode.submit(spec)
        try:
            return job_mode_batch(mode).submit(spec)
        except (SessionClosedError, SessionExpiredError):
            # The job-mode batch closed itself while idle: start a fresh one.
            return job_mode_batch(mode, renew=True).submit(spec)
