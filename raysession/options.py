"""Option models: what the primitives, sessions and the Aer backend accept, checked at the edge."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from qiskit_aer import AerSimulator

from ._env import env_whole_seconds

__all__ = ["EstimatorOptions", "SamplerOptions", "SessionLimits"]

_AER_RUN_OPTIONS = frozenset(AerSimulator().options.keys()) | {"parameter_binds"}
# Options the primitives set themselves; letting users set them would break the results.
_RESERVED_RUN_OPTIONS = frozenset(
    {"shots", "parameter_binds", "memory", "seed_simulator", "executor"}
)


def check_aer_options(options: dict[str, Any], *, what: str) -> dict[str, Any]:
    """Return ``options`` if every key is an Aer simulator option.

    Raises:
        ValueError: a key is not an Aer option; the message lists the near misses.
    """
    unknown = sorted(set(options) - _AER_RUN_OPTIONS)
    if unknown:
        raise ValueError(
            f"{what} has options Aer does not know: {unknown}. "
            "See qiskit_aer.AerSimulator().options for the accepted names."
        )
    return options


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    seed_simulator: int | None = Field(default=None, ge=0)
    """Seed of the simulator's random numbers, for reproducible results.

    A job split into several chunks derives one seed per chunk from this one and
    the chunk's index, so results do not depend on the number of workers.
    Default: ``None`` (a fresh seed per job, reported in the result metadata).
    """

    max_execution_time: float | None = Field(default=None, gt=0)
    """Seconds a job may run before it is stopped and reported with
    :class:`~raysession.errors.ExecutionTimeoutError`. Must be below the
    session's ``max_time``. Default: ``None`` (no limit beyond the session's)."""

    chunk_size: int = Field(default=256, gt=0)
    """Most parameter sets (bindings) in one unit of work sent to a worker.

    Small PUBs are packed together up to this size and a larger sweep is split
    along its leading axis. The split depends only on the job and this value.
    Default: ``256``.
    """

    circuit_cache: bool = True
    """Send each circuit to a worker once and refer to it by a content key in later
    jobs, so optimizer loops ship parameter values, not circuits. Default: ``True``."""

    run_options: dict[str, Any] = Field(default_factory=dict)
    """Options passed through to Aer's ``AerSimulator.run`` (for example
    ``{"max_parallel_threads": 1}``). ``shots``, ``memory``, ``seed_simulator``
    and ``parameter_binds`` are set by the primitive. Default: ``{}``."""

    @field_validator("run_options")
    @classmethod
    def _check_run_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(value) & _RESERVED_RUN_OPTIONS)
        if reserved:
            raise ValueError(
                f"run_options may not set {reserved}: use the primitive's own options "
                "(default_shots, seed_simulator) or run(..., shots=/precision=)."
            )
        return check_aer_options(value, what="run_options")


class EstimatorOptions(_Options):
    """Options of :class:`~raysession.EstimatorV2`.

    Example:
        >>> EstimatorOptions(default_precision=0.0, seed_simulator=7).default_precision
        0.0
    """

    default_precision: float = Field(default=0.015625, ge=0)
    """Standard error of the estimates when ``run()`` gets no ``precision``;
    ``0`` gives exact expectation values. Default: ``0.015625``."""

    default_shots: int | None = Field(default=None, gt=0)
    """If set, the default precision is ``1 / sqrt(default_shots)``, as in
    qiskit-ibm-runtime. Default: ``None``."""

    @model_validator(mode="after")
    def _shots_and_precision(self) -> EstimatorOptions:
        if self.default_shots is not None and "default_precision" in self.model_fields_set:
            raise ValueError("give default_precision or default_shots, not both")
        return self

    @property
    def precision(self) -> float:
        """The precision a PUB gets when neither it nor ``run()`` gives one."""
        if self.default_shots is not None:
            return float(1.0 / self.default_shots**0.5)
        return self.default_precision


class SamplerOptions(_Options):
    """Options of :class:`~raysession.SamplerV2`.

    Example:
        >>> SamplerOptions(default_shots=1024).default_shots
        1024
    """

    default_shots: int = Field(default=4096, gt=0)
    """Shots per parameter set when neither the PUB nor ``run()`` gives them.
    Default: ``4096``."""


class SessionLimits(BaseModel):
    """System-wide bounds on sessions, read from the environment.

    ``RAYSESSION_MIN_MAX_TIME`` and ``RAYSESSION_MAX_MAX_TIME`` (whole seconds)
    bound ``max_time``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_max_time: int = Field(default=1, gt=0)
    """Smallest ``max_time`` accepted, in seconds. Default: ``1``."""
    max_max_time: int = Field(default=8 * 3600, gt=0)
    """Largest ``max_time`` accepted and the value used when none is given, in
    seconds. Default: ``28800`` (8 h)."""

    @classmethod
    def from_env(cls) -> SessionLimits:
        """Read the limits from the environment, falling back to the defaults.

        Raises:
            ValueError: a variable is set to something other than a whole number of
                seconds of at least 1.
        """
        return cls(
            min_max_time=env_whole_seconds("RAYSESSION_MIN_MAX_TIME", 1),
            max_max_time=env_whole_seconds("RAYSESSION_MAX_MAX_TIME", 8 * 3600),
        )
