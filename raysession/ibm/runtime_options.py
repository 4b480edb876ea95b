"""Options of the V1 primitives (:class:`~raysession.Estimator`, :class:`~raysession.Sampler`),
shaped like qiskit-ibm-runtime's ``Options``.

Unlike the V2 option models these are mutable, because code written for
qiskit-ibm-runtime sets them field by field (``options.optimization_level = 2``);
every assignment is still validated, and unknown fields raise.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from qiskit_aer.noise import NoiseModel

__all__ = ["ExecutionOptions", "Options", "SimulatorOptions", "TranspilationOptions"]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, arbitrary_types_allowed=True
    )


class TranspilationOptions(_Model):
    """How circuits are transpiled for the backend, in the caller, before they are sent."""

    skip_transpilation: bool = False
    """Send circuits as given, ignoring ``optimization_level``. Default: ``False``."""
    initial_layout: list[int] | None = None
    """Physical qubit of each virtual qubit. Default: ``None`` (the transpiler chooses)."""
    layout_method: str | None = None
    """The transpiler's layout stage plugin. Default: ``None`` (the level's default)."""
    routing_method: str | None = None
    """The transpiler's routing stage plugin. Default: ``None`` (the level's default)."""
    approximation_degree: float | None = Field(default=None, ge=0, le=1)
    """Approximation in unitary synthesis, 1 for none. Default: ``None`` (exact)."""


class ExecutionOptions(_Model):
    """How many shots each circuit gets."""

    shots: int | None = Field(default=4000, gt=0)
    """Shots per circuit, as qiskit-ibm-runtime's V1 primitives default to. The
    estimator turns them into a precision of ``1 / sqrt(shots)`` (standard
    error of each value); ``None`` gives exact expectation values (the sampler
    needs shots). Default: ``4000``."""


class SimulatorOptions(_Model):
    """Settings of the Aer simulator a job runs on."""

    seed_simulator: int | None = Field(default=None, ge=0)
    """Seed of the simulator's random numbers. Default: ``None`` (a fresh seed per job)."""
    noise_model: NoiseModel | None = None
    """An Aer noise model applied to the job. Default: ``None`` (noiseless)."""
    coupling_map: list[list[int]] | None = None
    """Couplings the circuits are transpiled for, instead of the backend's. Default: ``None``."""
    basis_gates: list[str] | None = None
    """Gates the circuits are transpiled to, instead of the backend's. Default: ``None``."""


class Options(_Model):
    """Options of :class:`~raysession.Estimator` and :class:`~raysession.Sampler`.

    Example:
        >>> options = Options()
        >>> options.optimization_level = 2
        >>> options.execution.shots = 1000
        >>> options.precision
        0.03162277660168379
    """

    optimization_level: int = Field(default=3, ge=0, le=3)
    """Preset transpiler level (0-3) the circuits are transpiled at for the
    backend's target, in the caller. Default: ``3``, as qiskit-ibm-runtime."""
    resilience_level: int = Field(default=0, ge=0, le=3)
    """Error mitigation asked for (0 none, 1 measurement, 2 ZNE, 3 PEC). The
    simulator applies none: levels above 0 are accepted with one warning per
    primitive. Default: ``0`` (qiskit-ibm-runtime defaulted to 1, which has no
    effect on a simulator)."""
    max_execution_time: int | None = Field(default=None, gt=0)
    """Seconds a job may run; must be below the session's ``max_time``. Default: ``None``."""
    transpilation: TranspilationOptions = Field(default_factory=TranspilationOptions)
    """Transpiler settings. Default: ``TranspilationOptions()``."""
    execution: ExecutionOptions = Field(default_factory=ExecutionOptions)
    """Shots. Default: ``ExecutionOptions()``."""
    simulator: SimulatorOptions = Field(default_factory=SimulatorOptions)
    """Simulator settings. Default: ``SimulatorOptions()``."""

    @property
    def precision(self) -> float:
        """The estimator's standard error for these shots: ``1 / sqrt(shots)``, 0 without shots."""
        shots = self.execution.shots
        return 0.0 if shots is None else 1.0 / math.sqrt(shots)

    def merged(self, overrides: dict[str, Any]) -> Options:
        """A copy with ``overrides`` applied and validated.

        Keys are field names (``optimization_level``), sub-option groups given
        as dicts (``execution={"shots": 100}``), or fields of a group given flat
        (``shots=100``), as qiskit-ibm-runtime's ``run(**kwargs)`` accepted.

        Raises:
            ValueError: a key is unknown or a value is invalid.
        """
        data = {name: getattr(self, name) for name in type(self).model_fields}
        groups = {
            name: dict(getattr(self, name)) for name in ("transpilation", "execution", "simulator")
        }
        for key, value in overrides.items():
            if key in groups:
                if isinstance(value, BaseModel):
                    value = dict(value)
                groups[key].update(value)
            elif key in data:
                data[key] = value
            else:
                owner = next((g for g, fields in groups.items() if key in fields), None)
                if owner is None:
                    raise ValueError(
                        f"Unknown option {key!r}. Options has {sorted(data)}, and "
                        + ", ".join(f"{g}: {sorted(f)}" for g, f in groups.items())
                    )
                groups[owner][key] = value
        return Options.model_validate({**data, **groups})
