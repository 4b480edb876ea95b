"""Provider-style backends: RayProvider and RayBackend (a Qiskit BackendV2).

Code written for qiskit-ibm-provider (``IBMProvider().get_backend(name)``,
``backend.open_session()``, ``backend.run(circuits)``) runs here with only its
imports changed. ``backend.run`` goes through raysession's V2 sampler path
(session actor → the shared Aer worker pool) and its job converts the sampled bits into a
Qiskit :class:`~qiskit.result.Result`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target
from qiskit_aer import AerSimulator

from .._option_groups import RaySessionOptions, SimulatorOptions
from ..backends import AerBackend
from ..options import SamplerOptions
from ..sampler import SamplerV2
from . import _catalog
from ._v1_result import PACKAGE_VERSION, CircuitLayout, ToResult
from .provider_session import ProviderSession
from .runtime_job import RuntimeJob

__all__ = ["RayBackend", "RayProvider"]

# The options AerSimulator.run uses; it ignores the others.
AER_OPTION_NAMES = frozenset(AerSimulator().options.keys())

DEFAULT_SHOTS = 4000
"""Shots per circuit when ``run()`` gives none, as on IBM's cloud simulator."""


class RayBackend(BackendV2):  # type: ignore[misc]
    """A backend of :class:`RayProvider` or :class:`~raysession.QiskitRuntimeService`: a Qiskit
    ``BackendV2`` whose jobs run on the Ray cluster's shared pool of Aer workers.

    The target is the Aer simulator's (or the fake device's). Every backend
    object of that name in this process shares one :class:`AerBackend`
    description (:attr:`aer_backend`); the workers start when jobs need them.

    Lifecycle: :meth:`run` runs in job mode until :meth:`open_session`; then
    its jobs go to that session until :meth:`close_session` /
    :meth:`cancel_session` (or the session's ``with`` block ends).

    Args:
        name: A catalog name such as ``"ibmq_qasm_simulator"`` or ``"aer_simulator_statevector"``.
        provider: The provider or service the backend came from.

    Raises:
        ValueError: no backend has that name.

    Example:
        >>> backend = RayProvider().get_backend("ibmq_qasm_simulator")  # doctest: +SKIP
        >>> backend.run(bell, shots=1000).result().get_counts()  # doctest: +SKIP
    """

    def __init__(self, name: str, *, provider: Any = None) -> None:
        entry = _catalog.entry(name)
        super().__init__(
            provider=provider,
            name=name,
            description=entry.description,
            backend_version=PACKAGE_VERSION,
        )
        self._session: ProviderSession | None = None
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_backend_named, (self.name, self.provider))

    def __repr__(self) -> str:
        return f"<RayBackend {self.name!r}>"

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=DEFAULT_SHOTS, memory=False, seed_simulator=None)

    @property
    def target(self) -> Target:
        """The transpiler target: what the simulator runs (Aer's for its method, or the
        device's)."""
        return _catalog.target(self.name)

    @property
    def max_circuits(self) -> None:
        """No limit on the circuits of one job."""
        return None

    @property
    def aer_backend(self) -> AerBackend:
        """The :class:`AerBackend` description this backend's jobs run with (one per name and
        process; its workers are the cluster's shared pool)."""
        return _catalog.pool(self.name)

    def raysession_backend(self) -> AerBackend:
        """The backend this object's jobs run on (the ``ProvidesBackend`` protocol)."""
        return self.aer_backend

    # ----------------------------------------------------------------- sessions

    @property
    def session(self) -> ProviderSession | None:
        """The open session :meth:`run` uses, or ``None`` (job mode)."""
        with self._lock:
            if self._session is not None and self._session.closed:
                self._session = None
            return self._session

    def open_session(self, max_time: int | str | None = None) -> ProviderSession:
        """Open a session; :meth:`run` sends its jobs there until it is closed.

        Args:
            max_time: Int seconds or a string such as ``"2h 30m 40s"``; at least
                300 s (``RAYSESSION_PROVIDER_MIN_MAX_TIME``) and at most the system
                maximum. Default: the system maximum.

        Raises:
            ValueError: ``max_time`` is invalid or out of bounds.
            RuntimeError: the backend already has an open session.
        """
        opened = ProviderSession(self, max_time)
        current = self.session
        with self._lock:
            if current is not None:
                raise RuntimeError(
                    f"Backend {self.name} already has an open session ({current.session_id}); "
                    "call close_session() or cancel_session() first."
                )
            self._session = opened
        return opened

    def close_session(self) -> None:
        """Close the open session: queued jobs finish; later runs use job mode. Idempotent."""
        self._end_session(ProviderSession.close)

    def cancel_session(self) -> None:
        """Cancel the open session's queued jobs and close it; later runs use job mode.

        Idempotent."""
        self._end_session(ProviderSession.cancel)

    def _end_session(self, end: Callable[[ProviderSession], None]) -> None:
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            end(session)

    # ----------------------------------------------------------------- running

    def run(
        self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any
    ) -> RuntimeJob:
        """Run circuits and count their measurement outcomes.

        Args:
            run_input: A circuit or a list of circuits, with bound parameters and
                measurements into classical registers.
            **options: The run options :meth:`qiskit_aer.AerSimulator.run` takes:
                ``shots`` (default 4000), ``memory`` (also return each shot's outcome),
                ``seed_simulator``, ``parameter_binds`` (one ``{parameter: values}`` per
                circuit; each binding is one experiment of the result, as in Aer) and any
                Aer option. Others (``meas_level``, ``meas_return``, ``init_qubits``, ...)
                are ignored as Aer ignores them: a simulator returns classified
                (``meas_level=2``) counts only.

        Returns:
            The job; its ``result()`` is a :class:`~qiskit.result.Result`.

        Raises:
            ValueError, TypeError: a circuit or an option is invalid (raised here, before
                anything is queued).
            SessionClosedError, SessionExpiredError: the open session takes no new jobs.
        """
        return run_circuits(
            self, self.aer_backend, run_input, {**self.options.__dict__, **options}, self.session
        )


def run_circuits(
    backend: BackendV2,
    aer_backend: AerBackend,
    run_input: QuantumCircuit | Sequence[QuantumCircuit],
    options: dict[str, Any],
    session: ProviderSession | None = None,
) -> RuntimeJob:
    """``backend.run`` of a service backend or an :class:`AerBackend`: the circuits as one
    sampler job on ``aer_backend`` (in ``session`` if given, else job mode), whose
    ``result()`` is a Qiskit ``Result``.

    Args:
        options: The run options, over the backend's defaults (``shots``, ``memory``,
            ``seed_simulator`` are among them).
    """
    circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
    if not circuits or not all(isinstance(c, QuantumCircuit) for c in circuits):
        raise TypeError("run() takes a QuantumCircuit or a non-empty list of them")
    merged = dict(options)
    shots, memory = merged.pop("shots"), bool(merged.pop("memory"))
    seed = merged.pop("seed_simulator")
    if seed is None:  # drawn here, so that the Result can report it
        seed = secrets.randbelow(2**31)
    circuits = bind_parameters(circuits, merged.pop("parameter_binds", None))
    # As AerSimulator.run: options it does not know are ignored, not errors.
    merged = {key: value for key, value in merged.items() if key in AER_OPTION_NAMES}
    sampler_options = SamplerOptions(
        default_shots=shots,
        simulator=SimulatorOptions(seed_simulator=seed),
        raysession=RaySessionOptions(run_options=merged),
    )
    for circuit in circuits:
        if circuit.num_clbits == 0:
            raise ValueError(
                f"Circuit {circuit.name!r} has no classical bits: add measurements, "
                "as run() returns measurement counts."
            )
    layouts = tuple(CircuitLayout.of(circuit) for circuit in circuits)
    pubs = [SamplerPub.coerce(circuit, sampler_options.default_shots) for circuit in circuits]
    if session is not None:
        job = session.submit(pubs, sampler_options)
    else:
        job = SamplerV2(mode=aer_backend, options=sampler_options).run(pubs)
    converter = ToResult(layouts, backend.name, job.job_id(), memory, seed)
    return RuntimeJob(job, converter, backend=backend)


def run_on_aer_backend(
    backend: AerBackend,
    run_input: QuantumCircuit | Sequence[QuantumCircuit],
    options: dict[str, Any],
) -> RuntimeJob:
    """:meth:`AerBackend.run`: job mode on the backend itself, with Aer's defaults."""
    return run_circuits(backend, backend, run_input, {**backend.options.__dict__, **options})


def bind_parameters(
    circuits: list[QuantumCircuit], binds: Sequence[dict[Any, Sequence[float]]] | None
) -> list[QuantumCircuit]:
    """The circuits with ``parameter_binds`` applied as :meth:`AerSimulator.run` does: one
    bound circuit per binding, circuit by circuit.

    Raises:
        TypeError: the number of bindings is not the number of circuits.
    """
    if not binds:
        return circuits
    if len(binds) != len(circuits):
        raise TypeError(
            f"parameter_binds has {len(binds)} entries for {len(circuits)} circuits; give one "
            "{parameter: values} dict per circuit"
        )
    bound = []
    for circuit, bind in zip(circuits, binds, strict=True):
        sizes = {len(values) for values in bind.values()}
        if len(sizes) > 1:
            raise TypeError("parameter_binds: every parameter of a circuit needs as many values")
        for index in range(sizes.pop() if sizes else 1):
            bound.append(circuit.assign_parameters({p: v[index] for p, v in bind.items()}))
    return bound


def _backend_named(name: str, provider: Any) -> RayBackend:
    return RayBackend(name, provider=provider)


class RayProvider:
    """Gives :class:`RayBackend` objects by name, in place of qiskit-ibm-provider's ``IBMProvider``.

    No account or network is involved: the backends are Aer simulators (and any
    installed fake devices) running on Ray. Each provider returns the same
    backend object for a name, so a session opened on it is seen by later
    ``get_backend`` calls.

    Example:
        >>> backend = RayProvider().get_backend("ibmq_qasm_simulator")  # doctest: +SKIP
        >>> backend.open_session(max_time="2h 30m 40s")  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._backends: dict[str, RayBackend] = {}
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (RayProvider, ())

    def backends(
        self,
        name: str | None = None,
        *,
        min_num_qubits: int | None = None,
        filters: Callable[[RayBackend], bool] | None = None,
    ) -> list[RayBackend]:
        """The backends matching every criterion given.

        Args:
            name: Only the backend with this name.
            min_num_qubits: Only backends with at least this many qubits.
            filters: Only backends for which this returns True.
        """
        return select_backends(self._backend, name, min_num_qubits, filters)

    def get_backend(self, name: str | None = None) -> RayBackend:
        """The backend called ``name``; without a name, the least busy one.

        Raises:
            ValueError: no backend has that name.
        """
        return self._backend(_catalog.entry(name).name if name else _catalog.default_name())

    def _backend(self, name: str) -> RayBackend:
        with self._lock:
            if name not in self._backends:
                self._backends[name] = RayBackend(name, provider=self)
            return self._backends[name]


def select_backends(
    backend: Callable[[str], RayBackend],
    name: str | None,
    min_num_qubits: int | None,
    filters: Callable[[RayBackend], bool] | None,
) -> list[RayBackend]:
    """The catalog's backends (built with ``backend``) that match the criteria.

    Raises:
        ValueError: ``name`` is given and no backend has it.
    """
    names = [_catalog.entry(name).name] if name else list(_catalog.entries())
    selected = [backend(each) for each in names]
    if min_num_qubits is not None:
        selected = [each for each in selected if each.num_qubits >= min_num_qubits]
    if filters is not None:
        selected = [each for each in selected if filters(each)]
    return selected
