"""Estimator and Sampler with the V1 calling convention, a thin layer over EstimatorV2 / SamplerV2.

Code written for qiskit-ibm-runtime's V1 primitives
(``Estimator(session=session, options=options).run(circuits, observables,
parameter_values)``) runs here with only its imports changed. Each call is
transpiled for the backend in the caller (``optimization_level``), turned into
one V2 PUB per item, and run by raysession's V2 primitives; the job converts
the V2 result into an ``EstimatorResult`` or ``SamplerResult``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV1, BaseSamplerV1
from qiskit.providers import Options as QiskitOptions
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import CouplingMap, PassManager, generate_preset_pass_manager

from .._option_groups import SimulatorOptions
from ..backends import AerBackend
from ..errors import RaySessionWarning
from ..estimator import EstimatorV2
from ..options import EstimatorOptions, SamplerOptions
from ..sampler import SamplerV2
from ..session import Session, current_session
from . import _catalog
from ._v1_result import CircuitLayout, ToEstimatorResult, ToSamplerResult
from .provider import RayBackend
from .runtime_job import RuntimeJob
from .runtime_options import Options

__all__ = ["Estimator", "Sampler"]

_MITIGATION = {
    1: "measurement error mitigation",
    2: "zero-noise extrapolation",
    3: "probabilistic error cancellation",
}


class _PrimitiveV1:
    """Mode, options, transpilation and the resilience warning shared by Estimator and Sampler."""

    def _setup(
        self,
        backend: str | RayBackend | AerBackend | None,
        session: Session | None,
        options: Options | dict[str, Any] | None,
    ) -> None:
        self._mode: Session | AerBackend
        if session is not None:
            if not isinstance(session, Session):
                raise ValueError(
                    f"session must be a raysession Session, not {type(session).__name__}"
                )
            self._mode = session
        elif backend is not None:
            self._mode = _pool_of(backend)
        else:
            enclosing = current_session()
            self._mode = _catalog.pool(_catalog.default_name()) if enclosing is None else enclosing
        self._options = _coerce_options(options)
        self._warned: set[int] = set()
        self._pass_managers: dict[tuple[Any, ...], PassManager] = {}
        self._warn_resilience(self._options.resilience_level, stacklevel=4)

    def __reduce__(self) -> tuple[Any, ...]:
        if isinstance(self._mode, Session):
            return (type(self), (None, self._mode, self._options))
        return (type(self), (self._mode, None, self._options))

    @property
    def session(self) -> Session | None:
        """The session jobs run in; ``None`` in job mode."""
        return self._mode if isinstance(self._mode, Session) else None

    @property
    def mode(self) -> Session | AerBackend:
        """The session, or in job mode the worker pool, jobs are submitted to."""
        return self._mode

    @property
    def options(self) -> QiskitOptions:
        """A snapshot of the options, as qiskit-ibm-runtime returned it; change them with
        :meth:`set_options` or by passing :class:`~raysession.Options` at construction."""
        return QiskitOptions(**self._options.model_dump())

    def set_options(self, **fields: Any) -> None:
        """Change options: field names, groups as dicts, or a group's fields given flat.

        Raises:
            ValueError: a field is unknown or a value is invalid.
        """
        self._options = self._options.merged(fields)
        self._warn_resilience(self._options.resilience_level, stacklevel=3)

    @property
    def backend_name(self) -> str:
        """The name of the backend jobs run on."""
        mode = self._mode
        return mode.backend() if isinstance(mode, Session) else mode.name

    def _job_backend(self) -> RayBackend | None:
        name = self.backend_name
        return RayBackend(name) if _catalog.is_known(name) else None

    def _merged_options(self, overrides: dict[str, Any]) -> Options:
        options = self._options.merged(overrides)
        # Called as user -> BaseXV1.run -> _run -> here.
        self._warn_resilience(options.resilience_level, stacklevel=5)
        return options

    def _warn_resilience(self, level: int, *, stacklevel: int) -> None:
        if level == 0 or level in self._warned:
            return
        self._warned.add(level)
        warnings.warn(
            f"resilience_level={level} asks for {_MITIGATION[level]}, which raysession's Aer "
            "simulator does not apply: results are unmitigated. A noiseless simulator needs "
            "none; with a noise model the results carry its errors.",
            RaySessionWarning,
            stacklevel=stacklevel,
        )

    def _transpile(
        self, circuits: Sequence[QuantumCircuit], options: Options
    ) -> list[QuantumCircuit]:
        if options.transpilation.skip_transpilation:
            return list(circuits)
        t, sim = options.transpilation, options.simulator
        key = (
            options.optimization_level,
            tuple(t.initial_layout or ()),
            t.layout_method,
            t.routing_method,
            t.approximation_degree,
            tuple(map(tuple, sim.coupling_map or ())),
            tuple(sim.basis_gates or ()),
        )
        manager = self._pass_managers.get(key)
        if manager is None:
            common: dict[str, Any] = {
                "optimization_level": options.optimization_level,
                "initial_layout": t.initial_layout,
                "layout_method": t.layout_method,
                "routing_method": t.routing_method,
                "approximation_degree": t.approximation_degree,
            }
            target = _catalog.target(self.backend_name)
            if sim.coupling_map is None and sim.basis_gates is None:
                manager = generate_preset_pass_manager(target=target, **common)
            else:
                coupling = None if sim.coupling_map is None else CouplingMap(sim.coupling_map)
                manager = generate_preset_pass_manager(
                    basis_gates=sim.basis_gates or list(target.operation_names),
                    coupling_map=coupling,
                    **common,
                )
            self._pass_managers[key] = manager
        transpiled = manager.run(list(circuits))
        return transpiled if isinstance(transpiled, list) else [transpiled]


def _pool_of(backend: str | RayBackend | AerBackend) -> AerBackend:
    if isinstance(backend, AerBackend):
        return backend
    if isinstance(backend, str):
        return _catalog.pool(backend)
    if isinstance(backend, RayBackend):
        return backend.aer_backend
    raise ValueError(
        "backend must be a backend name, a backend from QiskitRuntimeService or RayProvider, "
        f"or an AerBackend, not {type(backend).__name__}"
    )


def _coerce_options(options: Options | dict[str, Any] | None) -> Options:
    if options is None:
        return Options()
    if isinstance(options, Options):
        # A copy: later changes to the caller's object do not reach this primitive.
        return Options.model_validate(dict(options))
    if isinstance(options, dict):
        return Options().merged(options)
    raise ValueError(f"options must be an Options or a dict, not {type(options).__name__}")


def _parameter_values(
    original: QuantumCircuit, transpiled: QuantumCircuit, values: Sequence[float]
) -> list[float]:
    """``values`` (in ``original.parameters`` order) in ``transpiled.parameters`` order."""
    by_parameter = dict(zip(original.parameters, values, strict=True))
    return [by_parameter[parameter] for parameter in transpiled.parameters]


class Estimator(_PrimitiveV1, BaseEstimatorV1[RuntimeJob]):  # type: ignore[misc]
    """Expectation values with the V1 calling convention, run by :class:`~raysession.EstimatorV2`.

    ``run(circuits, observables, parameter_values)`` takes single objects or
    equal-length sequences; ``result()`` of its job is an
    :class:`~qiskit.primitives.EstimatorResult` with one value per item and
    metadata ``shots``, ``precision`` and ``std_error``. With the default 4000
    shots each value has standard error ``1 / sqrt(4000)`` ≈ 0.0158 (as
    qiskit-ibm-runtime's V1 Estimator's shot noise); ``shots=None`` gives exact
    values.

    Lifecycle: bound at construction to ``session``, else to the enclosing
    ``with Session(...)`` block, else job mode on ``backend`` (default: the
    least busy backend).

    Args:
        backend: Job mode on this backend: a name, a service's backend or an AerBackend.
        session: The session jobs run in.
        options: :class:`~raysession.Options` or a dict of its fields.

    Raises:
        ValueError: an argument is invalid.

    Example:
        >>> with Session(service=QiskitRuntimeService(), backend="ibmq_qasm_simulator"):
        ...     job = Estimator().run(circuit, SparsePauliOp("IY"))  # doctest: +SKIP
        ...     print(job.result().values[0])  # doctest: +SKIP
    """

    def __init__(
        self,
        backend: str | RayBackend | AerBackend | None = None,
        session: Session | None = None,
        options: Options | dict[str, Any] | None = None,
    ) -> None:
        BaseEstimatorV1.__init__(self)
        self._setup(backend, session, options)

    def _run(
        self,
        circuits: tuple[QuantumCircuit, ...],
        observables: tuple[SparsePauliOp, ...],
        parameter_values: tuple[tuple[float, ...], ...],
        **run_options: Any,
    ) -> RuntimeJob:
        options = self._merged_options(run_options)
        transpiled = self._transpile(circuits, options)
        pubs: list[tuple[Any, ...]] = []
        for original, circuit, observable, values in zip(
            circuits, transpiled, observables, parameter_values, strict=True
        ):
            if circuit.layout is not None:
                observable = observable.apply_layout(circuit.layout)
            if circuit.num_parameters:
                pubs.append((circuit, observable, _parameter_values(original, circuit, values)))
            else:
                pubs.append((circuit, observable))
        shots = options.execution.shots
        v2_options = EstimatorOptions(
            default_precision=options.precision,
            max_execution_time=options.max_execution_time,
            simulator=_v2_simulator(options),
        )
        job = EstimatorV2(mode=self._mode, options=v2_options).run(pubs)
        return RuntimeJob(job, ToEstimatorResult(shots), backend=self._job_backend())


class Sampler(_PrimitiveV1, BaseSamplerV1[RuntimeJob]):  # type: ignore[misc]
    """Quasi-probabilities with the V1 calling convention, run by :class:`~raysession.SamplerV2`.

    ``run(circuits, parameter_values)`` takes a circuit or a sequence of them,
    each measuring into classical registers; ``result()`` of its job is a
    :class:`~qiskit.primitives.SamplerResult` with one
    :class:`~qiskit.result.QuasiDistribution` per circuit, keyed by the
    integer of the circuit's clbits (clbit 0 the lowest bit). Default: 4000 shots.

    Lifecycle and arguments are those of :class:`Estimator`.

    Example:
        >>> Sampler(session=session).run(bell).result().quasi_dists[0]  # doctest: +SKIP
        {0: 0.502, 3: 0.498}
    """

    def __init__(
        self,
        backend: str | RayBackend | AerBackend | None = None,
        session: Session | None = None,
        options: Options | dict[str, Any] | None = None,
    ) -> None:
        BaseSamplerV1.__init__(self)
        self._setup(backend, session, options)

    def _run(
        self,
        circuits: tuple[QuantumCircuit, ...],
        parameter_values: tuple[tuple[float, ...], ...],
        **run_options: Any,
    ) -> RuntimeJob:
        options = self._merged_options(run_options)
        shots = options.execution.shots
        if shots is None:
            raise ValueError("Sampler needs shots: set options.execution.shots or run(shots=...)")
        transpiled = self._transpile(circuits, options)
        layouts = tuple(CircuitLayout.of(circuit) for circuit in transpiled)
        pubs: list[tuple[Any, ...]] = []
        for original, circuit, values in zip(circuits, transpiled, parameter_values, strict=True):
            if circuit.num_parameters:
                pubs.append((circuit, _parameter_values(original, circuit, values)))
            else:
                pubs.append((circuit,))
        v2_options = SamplerOptions(
            default_shots=shots,
            max_execution_time=options.max_execution_time,
            simulator=_v2_simulator(options),
        )
        job = SamplerV2(mode=self._mode, options=v2_options).run(pubs)
        return RuntimeJob(job, ToSamplerResult(layouts), backend=self._job_backend())


def _v2_simulator(options: Options) -> SimulatorOptions:
    """The V2 ``simulator`` options of a V1 job: its seed and noise model (the V1
    primitive transpiled for the coupling map and basis gates already)."""
    simulator = options.simulator
    return SimulatorOptions(
        seed_simulator=simulator.seed_simulator, noise_model=simulator.noise_model
    )
