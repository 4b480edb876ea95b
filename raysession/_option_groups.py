"""The groups of qiskit-ibm-runtime's V2 option tree (``resilience``, ``twirling``, ...).

Field names, nesting and validation are qiskit-ibm-runtime's. Where it leaves a field
unset and documents a hardware default, the default here is what a simulator does
(no mitigation, no twirling), so that reading an option tells what a job gets; the
fields a simulator cannot honour are listed by :meth:`OptionGroup.unsupported`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from qiskit.transpiler import CouplingMap
from qiskit_aer import AerSimulator
from qiskit_aer.aererror import AerError
from qiskit_aer.noise import NoiseModel

SeedLike = Annotated[int, Field(ge=0)] | np.random.Generator
"""A seed as Qiskit's reference primitives take it: an int, or a numpy ``Generator`` that
an int seed is drawn from at each ``run()``."""

AER_OPTIONS = frozenset(AerSimulator().options.keys()) | {"parameter_binds"}
# Options the primitives set themselves; letting users set them would break the results.
RESERVED_RUN_OPTIONS = frozenset(
    {"shots", "parameter_binds", "memory", "seed_simulator", "executor"}
)


# The most retries a job may ask for: each can take a placement timeout (60 s by default).
MAX_RETRIES = 10


def check_aer_options(options: dict[str, Any], *, what: str) -> dict[str, Any]:
    """Return ``options`` if every key is an Aer simulator option.

    Raises:
        ValueError: a key is not an Aer option.
    """
    unknown = sorted(set(options) - AER_OPTIONS)
    if unknown:
        raise ValueError(
            f"{what} has options Aer does not know: {unknown}. "
            "See qiskit_aer.AerSimulator().options for the accepted names."
        )
    return options


class OptionGroup(BaseModel):
    """A mutable option group: every assignment is validated, unknown names raise with the
    valid ones listed, and :meth:`update` merges nested dicts as qiskit-ibm-runtime does."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        arbitrary_types_allowed=True,
        use_attribute_docstrings=True,  # the field docstrings feed the README's reference
    )

    # Fields a simulator does not honour: a value other than the default is reported.
    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _known_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _check_names(cls, data)
        return data

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            _check_names(type(self), {name: value})
        super().__setattr__(name, value)

    def update(self, **options: Any) -> None:
        """Change options in place; a group given as a dict is merged into the group.

        ``options.update(default_shots=100, simulator={"seed_simulator": 7})`` sets
        ``default_shots`` and ``simulator.seed_simulator`` and keeps the other simulator
        options. Every change is validated before any is applied.

        Raises:
            ValueError: an option name is unknown (the message lists the valid ones) or a
                value is invalid (pydantic's ``ValidationError``).
        """
        merged = _merge(self, options)
        checked = type(self).model_validate({**self._values(), **merged})
        for name in merged:
            setattr(self, name, getattr(checked, name))

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}

    def unsupported(self, prefix: str = "") -> list[str]:
        """Dotted names of the options set to something a simulator does not honour."""
        found: list[str] = []
        default = _default(type(self))
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, OptionGroup):
                found += value.unsupported(f"{prefix}{name}.")
            elif name in self._UNSUPPORTED and not _same(value, getattr(default, name)):
                found.append(f"{prefix}{name}")
        return found


@functools.cache
def _default(cls: type[OptionGroup]) -> OptionGroup:
    """A group with every option at its default (built once per class; only read)."""
    return cls()


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


def _check_names(cls: type[BaseModel], data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - set(cls.model_fields))
    if unknown:
        raise ValueError(
            f"{cls.__name__} has no option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(cls.model_fields)}."
        )


def _merge(group: OptionGroup, updates: dict[str, Any]) -> dict[str, Any]:
    _check_names(type(group), updates)
    merged: dict[str, Any] = {}
    for name, value in updates.items():
        current = getattr(group, name)
        if isinstance(current, OptionGroup) and isinstance(value, dict):
            value = type(current).model_validate({**current._values(), **_merge(current, value)})
        merged[name] = value
    return merged


# ------------------------------------------------------------------ resilience


class MeasureNoiseLearningOptions(OptionGroup):
    """Learning of readout noise for measurement mitigation; not applied on a simulator."""

    num_randomizations: int = Field(default=32, ge=1)
    """Random circuits used to learn the readout noise. Default: ``32``."""
    shots_per_randomization: int | Literal["auto"] = "auto"
    """Shots per random circuit. Default: ``"auto"``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ("num_randomizations", "shots_per_randomization")


class ZneOptions(OptionGroup):
    """Zero-noise extrapolation; not applied on a simulator."""

    amplifier: Literal["gate_folding", "gate_folding_front", "gate_folding_back", "pea"] = (
        "gate_folding"
    )
    """How noise is amplified. Default: ``"gate_folding"``."""
    noise_factors: tuple[Annotated[float, Field(ge=1)], ...] = (1.0, 3.0, 5.0)
    """Noise factors to run at. Default: ``(1, 3, 5)``."""
    extrapolator: str | tuple[str, ...] = ("exponential", "linear")
    """Extrapolator(s) fitted to the results. Default: ``("exponential", "linear")``."""
    extrapolated_noise_factors: tuple[Annotated[float, Field(ge=0)], ...] | None = None
    """Noise factors to evaluate the fits at. Default: ``None`` (0 and the noise factors)."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = (
        "amplifier",
        "noise_factors",
        "extrapolator",
        "extrapolated_noise_factors",
    )


class PecOptions(OptionGroup):
    """Probabilistic error cancellation; not applied on a simulator."""

    max_overhead: float | None = Field(default=100, ge=1)
    """Largest sampling overhead allowed. Default: ``100``."""
    noise_gain: float | Literal["auto"] = "auto"
    """Amount of noise cancelled. Default: ``"auto"``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ("max_overhead", "noise_gain")


class LayerNoiseLearningOptions(OptionGroup):
    """Learning of layer noise for PEC and PEA; not done on a simulator."""

    max_layers_to_learn: int | None = Field(default=4, ge=0)
    """Most distinct layers learned. Default: ``4``."""
    shots_per_randomization: int = Field(default=128, ge=1)
    """Shots per random circuit. Default: ``128``."""
    num_randomizations: int = Field(default=32, ge=1)
    """Random circuits per layer depth. Default: ``32``."""
    layer_pair_depths: tuple[Annotated[int, Field(ge=0)], ...] = (0, 1, 2, 4, 16, 32)
    """Depths of layer pairs learned. Default: ``(0, 1, 2, 4, 16, 32)``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = (
        "max_layers_to_learn",
        "shots_per_randomization",
        "num_randomizations",
        "layer_pair_depths",
    )


class ResilienceOptionsV2(OptionGroup):
    """Error mitigation of the estimator. A simulator applies none: any value other than
    the default is accepted and reported in the run's warning."""

    measure_mitigation: bool = False
    """Mitigate readout errors. Default: ``False`` (qiskit-ibm-runtime: ``True`` on hardware)."""
    measure_noise_learning: MeasureNoiseLearningOptions = Field(
        default_factory=MeasureNoiseLearningOptions
    )
    """Readout noise learning. Default: ``MeasureNoiseLearningOptions()``."""
    zne_mitigation: bool = False
    """Zero-noise extrapolation. Default: ``False``."""
    zne: ZneOptions = Field(default_factory=ZneOptions)
    """ZNE settings. Default: ``ZneOptions()``."""
    pec_mitigation: bool = False
    """Probabilistic error cancellation. Default: ``False``."""
    pec: PecOptions = Field(default_factory=PecOptions)
    """PEC settings. Default: ``PecOptions()``."""
    layer_noise_learning: LayerNoiseLearningOptions = Field(
        default_factory=LayerNoiseLearningOptions
    )
    """Layer noise learning. Default: ``LayerNoiseLearningOptions()``."""
    layer_noise_model: Any = None
    """A learned layer noise model (``NoiseLearnerResult`` or a list of ``LayerError``).
    Default: ``None``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = (
        "measure_mitigation",
        "zne_mitigation",
        "pec_mitigation",
        "layer_noise_model",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ResilienceOptionsV2:
        if not self.measure_mitigation and self.measure_noise_learning != (
            MeasureNoiseLearningOptions()
        ):
            raise ValueError(
                "'measure_noise_learning' options are set, but 'measure_mitigation' is not "
                "set to True."
            )
        if self.pec_mitigation and self.zne_mitigation:
            raise ValueError(
                "pec_mitigation and zne_mitigation options cannot be simultaneously enabled. "
                "Set one of them to False."
            )
        return self


# ------------------------------------------------------------------ suppression


class TwirlingOptions(OptionGroup):
    """Pauli twirling. A simulator does not twirl: values other than the defaults are
    accepted and reported in the run's warning."""

    enable_gates: bool = False
    """Twirl 2-qubit Clifford gates. Default: ``False``."""
    enable_measure: bool = False
    """Twirl measurements. Default: ``False`` (qiskit-ibm-runtime's estimator: ``True``)."""
    num_randomizations: int | Literal["auto"] = "auto"
    """Random circuits per PUB. Default: ``"auto"``."""
    shots_per_randomization: int | Literal["auto"] = "auto"
    """Shots per random circuit. Default: ``"auto"``."""
    strategy: Literal["active", "active-accum", "active-circuit", "all"] = "active-accum"
    """Which qubits of a twirled layer are twirled. Default: ``"active-accum"``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = (
        "enable_gates",
        "enable_measure",
        "num_randomizations",
        "shots_per_randomization",
        "strategy",
    )

    @field_validator("num_randomizations", "shots_per_randomization")
    @classmethod
    def _at_least_one(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1 or 'auto'")
        return value


class DynamicalDecouplingOptions(OptionGroup):
    """Dynamical decoupling. A simulator has no idle-time noise to suppress: values other
    than the defaults are accepted and reported in the run's warning."""

    enable: bool = False
    """Insert dynamical decoupling sequences. Default: ``False``."""
    sequence_type: Literal["XX", "XpXm", "XY4"] = "XX"
    """The sequence inserted. Default: ``"XX"``."""
    extra_slack_distribution: Literal["middle", "edges"] = "middle"
    """Where rounding slack goes. Default: ``"middle"``."""
    scheduling_method: Literal["alap", "asap"] = "alap"
    """How gates are scheduled. Default: ``"alap"``."""
    skip_reset_qubits: bool = False
    """Leave qubits idle right after a reset. Default: ``False``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = (
        "enable",
        "sequence_type",
        "extra_slack_distribution",
        "scheduling_method",
        "skip_reset_qubits",
    )


# ------------------------------------------------------------------ execution and environment


class ExecutionOptionsV2(OptionGroup):
    """How circuits are executed; a simulator starts every shot from a fresh ``|0>`` state."""

    init_qubits: bool = True
    """Reset qubits to ``|0>`` before each shot; ``False`` is not honoured. Default: ``True``."""
    rep_delay: float | None = Field(default=None, ge=0)
    """Seconds between shots on hardware; not honoured. Default: ``None``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ("init_qubits", "rep_delay")


class SamplerExecutionOptionsV2(ExecutionOptionsV2):
    """Execution options of the sampler."""

    meas_type: Literal["classified", "kerneled", "avg_kerneled"] = "classified"
    """Form of measurement results; only ``"classified"`` bits are simulated.
    Default: ``"classified"``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ("init_qubits", "rep_delay", "meas_type")


class EnvironmentOptions(OptionGroup):
    """The execution environment of a job."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"
    """Logging level of the execution environment; not applied to Ray workers (configure
    ``logging`` for raysession instead). Default: ``"WARNING"``."""
    callback: Callable[..., Any] | None = None
    """Called with interim results on hardware; never called by a simulator. Default: ``None``."""
    job_tags: list[str] | None = None
    """Tags of the job. Default: ``None``."""
    private: bool = False
    """Keep no inputs and read results once; not applied. Default: ``False``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ("log_level", "callback", "private")


# ------------------------------------------------------------------ simulator and raysession


class SimulatorOptions(OptionGroup):
    """The simulator a job runs on."""

    noise_model: NoiseModel | None = None
    """An Aer ``NoiseModel`` for the job (not its dict form, which Aer deprecated). It joins
    the backend's Aer options; workers build one simulator per option set and keep it.
    Default: ``None`` (the backend's own, noiseless unless it has one)."""
    seed_simulator: SeedLike | None = None
    """Seed of the simulator's random numbers: an int, or a numpy ``Generator`` an int is
    drawn from at each ``run()``. A job split into chunks derives one seed per chunk
    from it. Default: ``None`` (a fresh seed per job, reported in the result metadata)."""
    coupling_map: list[list[int]] | None = None
    """Couplings to transpile for. V2 primitives take ISA circuits and do not transpile:
    transpile for this map before ``run()``; setting it is reported. Default: ``None``."""
    basis_gates: list[str] | None = None
    """Gates to transpile to; as ``coupling_map``, not applied by V2 primitives.
    Default: ``None``."""

    _UNSUPPORTED: ClassVar[tuple[str, ...]] = ("coupling_map", "basis_gates")

    @field_validator("coupling_map", mode="before")
    @classmethod
    def _coupling_map(cls, value: Any) -> Any:
        if isinstance(value, CouplingMap):
            return [list(edge) for edge in value.get_edges()]
        return value


class RaySessionOptions(OptionGroup):
    """raysession's own knobs: how a job is split and what Aer runs it with."""

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
    backend_options: dict[str, Any] = Field(default_factory=dict)
    """Aer simulator options of the job (``method``, ``noise_model``, ...), applied over
    the backend's own, as ``qiskit_aer.primitives``' ``backend_options``. Default: ``{}``."""
    max_retries: int = Field(default=0, ge=0, le=MAX_RETRIES)
    """How many times the session runs a job again after it failed for a transient
    backend reason: its workers were lost (:class:`~raysession.BackendUnavailableError`,
    or :class:`~raysession.WorkerLostError` once a chunk crashed its worker more often
    than ``RAYSESSION_MAX_CHUNK_RETRIES`` allows), or no node could place a worker within
    ``RAYSESSION_PLACEMENT_TIMEOUT_S``. Errors of the job itself (a circuit Aer refuses,
    bad input, ``max_execution_time`` passed, cancellation) are never retried. A retry
    keeps the job's place in the session, runs within its ``max_execution_time``, and
    each attempt is listed in ``job.metrics()["attempts"]``. At most 10. Default: ``0``."""

    @field_validator("run_options")
    @classmethod
    def _check_run_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(value) & RESERVED_RUN_OPTIONS)
        if reserved:
            raise ValueError(
                f"run_options may not set {reserved}: use the primitive's own options "
                "(default_shots, simulator.seed_simulator) or run(..., shots=/precision=)."
            )
        return check_aer_options(value, what="run_options")

    @field_validator("backend_options")
    @classmethod
    def _check_backend_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_aer_options(value, what="backend_options")
        try:
            AerSimulator(**value)
        except AerError as exc:
            raise ValueError(f"invalid Aer option in backend_options: {exc}") from exc
        return value


def draw_seed(seed: int | np.random.Generator | None) -> int | None:
    """An int seed: ``seed`` itself, or one drawn from a ``Generator`` (advancing it)."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**31))
    return seed
