"""Option models: what the primitives (qiskit-ibm-runtime's V2 option tree) and sessions accept."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ._env import env_whole_seconds
from ._option_groups import (
    DynamicalDecouplingOptions,
    EnvironmentOptions,
    ExecutionOptionsV2,
    OptionGroup,
    RaySessionOptions,
    ResilienceOptionsV2,
    SamplerExecutionOptionsV2,
    SeedLike,
    SimulatorOptions,
    TwirlingOptions,
    draw_seed,
)

__all__ = [
    "DynamicalDecouplingOptions",
    "EnvironmentOptions",
    "EstimatorOptions",
    "ExecutionOptionsV2",
    "RaySessionOptions",
    "ResilienceOptionsV2",
    "SamplerExecutionOptionsV2",
    "SamplerOptions",
    "SessionLimits",
    "SimulatorOptions",
    "TwirlingOptions",
]

# The keys of qiskit_aer.primitives' options dicts.
_AER_PRIMITIVE_KEYS = frozenset({"backend_options", "run_options"})


class _OptionsV2(OptionGroup):
    """What both primitives take: qiskit-ibm-runtime's ``OptionsV2``, plus ``raysession``."""

    max_execution_time: float | None = Field(default=None, gt=0)
    """Seconds a job may run before it is stopped and reported with
    :class:`~raysession.errors.ExecutionTimeoutError`. Must be below the
    session's ``max_time``. Default: ``None`` (no limit beyond the session's)."""
    dynamical_decoupling: DynamicalDecouplingOptions = Field(
        default_factory=DynamicalDecouplingOptions
    )
    """Dynamical decoupling; not applied by a simulator.
    Default: ``DynamicalDecouplingOptions()``."""
    twirling: TwirlingOptions = Field(default_factory=TwirlingOptions)
    """Pauli twirling; not applied by a simulator. Default: ``TwirlingOptions()``."""
    environment: EnvironmentOptions = Field(default_factory=EnvironmentOptions)
    """Job tags, log level, callback. Default: ``EnvironmentOptions()``."""
    simulator: SimulatorOptions = Field(default_factory=SimulatorOptions)
    """Noise model and seed of the simulator. Default: ``SimulatorOptions()``."""
    experimental: dict[str, Any] | None = None
    """qiskit-ibm-runtime's experimental options; not applied. Default: ``None``."""
    raysession: RaySessionOptions = Field(default_factory=RaySessionOptions)
    """raysession's own knobs: ``chunk_size``, ``circuit_cache``, Aer ``run_options`` and
    ``backend_options``. Default: ``RaySessionOptions()``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ("experimental",)

    def seed(self) -> int | None:
        """The job's seed, once seeds are drawn (:meth:`for_job`): the simulator's."""
        seed = self.simulator.seed_simulator
        assert seed is None or isinstance(seed, int)
        return seed

    def for_job(self) -> Any:
        """A snapshot of these options for one job: a deep copy with every seed given as a
        ``Generator`` replaced by an int drawn from it (which advances the generator)."""
        snapshot = self.model_copy(deep=True)
        snapshot.simulator.seed_simulator = draw_seed(self.simulator.seed_simulator)
        return snapshot

    @classmethod
    def _from_aer(cls, options: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def coerce(cls, options: object) -> Any:
        """These options from an instance (used as is), ``None``, a dict of the option
        tree, or ``qiskit_aer.primitives``' dict form (``backend_options``, ``run_options``).

        Raises:
            ValueError: an option is unknown (the message lists the valid ones) or invalid.
        """
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if isinstance(options, dict):
            if _AER_PRIMITIVE_KEYS & set(options):
                return cls.model_validate(cls._from_aer(options))
            return cls.model_validate(options)
        raise ValueError(
            f"options must be a {cls.__name__} or a dict, not {type(options).__name__}"
        )


def _aer_run_options(options: dict[str, Any], drop: tuple[str, ...]) -> tuple[Any, dict[str, Any]]:
    """(seed_simulator, the other run options) of qiskit_aer.primitives' run_options."""
    run_options = dict(options.get("run_options") or {})
    seed = run_options.pop("seed_simulator", None)
    for key in drop:
        run_options.pop(key, None)
    return seed, run_options


class EstimatorOptions(_OptionsV2):
    """Options of :class:`~raysession.EstimatorV2`: qiskit-ibm-runtime's V2 option tree.

    Options are changed by attribute or with :meth:`update`, each change validated; a
    job takes a snapshot at ``run()``. Options a simulator cannot honour
    (``resilience_level`` above 0, ``resilience.*``, ``twirling.*``,
    ``dynamical_decoupling.*``, ...) are accepted, and each run that has any warns once,
    naming them, as qiskit-ibm-runtime's local testing mode does.

    Example:
        >>> options = EstimatorOptions(default_precision=0.0)
        >>> options.simulator.seed_simulator = 7
        >>> options.update(default_shots=10_000)
        >>> options.precision
        0.01
    """

    default_precision: float = Field(default=0.015625, ge=0, allow_inf_nan=False)
    """Standard error of the estimates when neither the PUB nor ``run()`` gives one;
    ``0`` gives exact expectation values (qiskit-ibm-runtime requires it above 0).
    Default: ``0.015625`` (``1 / sqrt(4096)``)."""
    default_shots: int | None = Field(default=None, gt=0)
    """If set, overrides ``default_precision`` with ``1 / sqrt(default_shots)``.
    Default: ``None``."""
    seed_estimator: SeedLike | None = None
    """Seed of the estimator's sampling (the noise of precision above 0): an int, or a
    numpy ``Generator`` an int is drawn from at each ``run()``. If set it is the job's
    seed, over ``simulator.seed_simulator``. Default: ``None``."""
    resilience_level: int = Field(default=0, ge=0, le=2)
    """Error mitigation asked for (0 none, 1 readout, 2 ZNE); a simulator applies none,
    levels above 0 are reported. Default: ``0`` (qiskit-ibm-runtime: 1 on hardware)."""
    resilience: ResilienceOptionsV2 = Field(default_factory=ResilienceOptionsV2)
    """Advanced mitigation; not applied by a simulator. Default: ``ResilienceOptionsV2()``."""
    execution: ExecutionOptionsV2 = Field(default_factory=ExecutionOptionsV2)
    """Execution options. Default: ``ExecutionOptionsV2()``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ("experimental", "resilience_level")

    @property
    def precision(self) -> float:
        """The precision a PUB gets when neither it nor ``run()`` gives one."""
        if self.default_shots is not None:
            return 1.0 / math.sqrt(self.default_shots)
        return self.default_precision

    def seed(self) -> int | None:
        """The job's seed, once seeds are drawn: ``seed_estimator``, else the simulator's."""
        if self.seed_estimator is not None:
            assert isinstance(self.seed_estimator, int)
            return self.seed_estimator
        return super().seed()

    def for_job(self) -> EstimatorOptions:
        """A snapshot for one job, with seeds drawn (see :meth:`_OptionsV2.for_job`)."""
        snapshot: EstimatorOptions = super().for_job()
        snapshot.seed_estimator = draw_seed(self.seed_estimator)
        return snapshot

    @classmethod
    def _from_aer(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``qiskit_aer.primitives.EstimatorV2``'s options: ``default_precision``,
        ``backend_options`` (the job's Aer options) and ``run_options`` (its
        ``seed_simulator`` seeds the job; shots do not apply to exact expectation values)."""
        _check_names_of(options, {"default_precision", *_AER_PRIMITIVE_KEYS}, "EstimatorV2")
        seed, run_options = _aer_run_options(options, ("shots",))
        tree: dict[str, Any] = {
            "simulator": {"seed_simulator": seed},
            "raysession": {
                "backend_options": dict(options.get("backend_options") or {}),
                "run_options": run_options,
            },
        }
        if "default_precision" in options:
            tree["default_precision"] = options["default_precision"]
        return tree


class SamplerOptions(_OptionsV2):
    """Options of :class:`~raysession.SamplerV2`: qiskit-ibm-runtime's V2 option tree.

    Changed and checked as :class:`EstimatorOptions` are.

    Example:
        >>> options = SamplerOptions(default_shots=1024)
        >>> options.simulator.seed_simulator = 7
        >>> options.default_shots
        1024
    """

    default_shots: int = Field(default=4096, gt=0)
    """Shots per parameter set when neither the PUB nor ``run()`` gives them.
    Default: ``4096``."""
    execution: SamplerExecutionOptionsV2 = Field(default_factory=SamplerExecutionOptionsV2)
    """Execution options. Default: ``SamplerExecutionOptionsV2()``."""

    @classmethod
    def _from_aer(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``qiskit_aer.primitives.SamplerV2``'s options: ``default_shots`` (1024 when not
        given, as there), ``backend_options`` and ``run_options`` (whose ``seed_simulator``
        seeds the job; ``shots``, ``memory`` and ``parameter_binds`` are dropped, as there)."""
        _check_names_of(options, {"default_shots", *_AER_PRIMITIVE_KEYS}, "SamplerV2")
        seed, run_options = _aer_run_options(options, ("shots", "parameter_binds", "memory"))
        return {
            "default_shots": options.get("default_shots", 1024),
            "simulator": {"seed_simulator": seed},
            "raysession": {
                "backend_options": dict(options.get("backend_options") or {}),
                "run_options": run_options,
            },
        }


def _check_names_of(options: dict[str, Any], valid: set[str], primitive: str) -> None:
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(
            f"options with backend_options/run_options are qiskit_aer.primitives.{primitive}'s; "
            f"it has no {unknown}: valid keys are {sorted(valid)}."
        )


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
