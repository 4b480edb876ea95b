"""Backend names a local service or provider knows; one Aer worker pool per name per process.

Names map to Aer simulator configurations: ``"aer_simulator"`` and
``"ibmq_qasm_simulator"`` (the automatic method, as IBM's cloud simulator
was) and ``"aer_simulator_<method>"`` for Aer's sampling methods. Device-like
backends are always listed: ``"generic_line_5q"`` and ``"generic_heavy_hex_19q"``, built
from Qiskit's ``GenericBackendV2`` with fixed seeds (so their noise is the same in every
process), and qiskit-ibm-runtime's fake devices (``"fake_..."``) when that optional
package is importable. A device runs on Aer with its noise model, and its circuits must be
ISA for its target (:meth:`AerBackend.from_backend`).

A pool of Aer workers is started for a name the first time a job needs it and
is then shared by every session, service and provider backend of this process,
so repeated ``Session(service=..., backend=name)`` calls reuse the same workers.
The pools belong to the Ray connection they were started on; after
``ray.shutdown()`` and a new ``ray.init()`` new pools are started.

This module imports nothing that imports :mod:`raysession.session`, so the
session can resolve names through it.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.transpiler import CouplingMap

from .._env import env_count
from .._log import get_logger
from ..backends import AerBackend
from ..backends.aer import aer_target

if TYPE_CHECKING:
    from qiskit.transpiler import Target

logger = get_logger(__name__)

DEFAULT_BACKEND = "aer_simulator"
"""The name used where a backend is needed and none is named and no pool is running yet."""

NUM_WORKERS_ENV = "RAYSESSION_BACKEND_NUM_WORKERS"
"""Environment variable: workers in each pool started for a backend name (default: one per CPU)."""

# Aer methods that sample measurements; "unitary" and "superop" do not, so they are not listed.
_SAMPLING_METHODS = (
    "statevector",
    "density_matrix",
    "stabilizer",
    "matrix_product_state",
    "extended_stabilizer",
)


@dataclass(frozen=True)
class BackendEntry:
    """One name the catalog knows and how to simulate it."""

    name: str
    aer_options: dict[str, Any] = field(default_factory=dict)
    """Options of :class:`qiskit_aer.AerSimulator` the workers are built with (a device's
    noise model is added by :meth:`AerBackend.from_backend`)."""
    description: str = ""
    device: Any = None
    """The device (a ``BackendV2``) the entry simulates, if any: its target and noise."""


def _aer_entries() -> list[BackendEntry]:
    entries = [
        BackendEntry("aer_simulator", {}, "Aer simulator, automatic method"),
        BackendEntry(
            "ibmq_qasm_simulator", {}, "Aer simulator (automatic method) under IBM's cloud name"
        ),
    ]
    entries += [
        BackendEntry(f"aer_simulator_{method}", {"method": method}, f"Aer simulator, {method}")
        for method in _SAMPLING_METHODS
    ]
    return entries


def _generic_entries() -> list[BackendEntry]:
    """Device-like backends that need no optional package: Qiskit's ``GenericBackendV2`` on
    fixed coupling maps, with fixed seeds so every process builds the same noise."""
    devices = {
        "generic_line_5q": GenericBackendV2(5, coupling_map=CouplingMap.from_line(5), seed=5),
        "generic_heavy_hex_19q": GenericBackendV2(
            19, coupling_map=CouplingMap.from_heavy_hex(3), seed=19
        ),
    }
    return [
        BackendEntry(
            name, {}, f"Aer with the noise of a {device.num_qubits}-qubit generic device", device
        )
        for name, device in devices.items()
    ]


def _fake_entries() -> list[BackendEntry]:
    """Fake device backends from qiskit-ibm-runtime, if it is installed."""
    if importlib.util.find_spec("qiskit_ibm_runtime") is None:
        return []
    try:
        with warnings.catch_warnings():
            # Some fake devices warn, on loading, that their error values are made up.
            warnings.simplefilter("ignore", UserWarning)
            fake_provider = importlib.import_module("qiskit_ibm_runtime.fake_provider")
            devices = fake_provider.FakeProviderForBackendV2().backends()
    except Exception as exc:  # an optional package that fails to load is skipped
        logger.info("fake backends are not available: %s", exc)
        return []
    return [
        BackendEntry(device.name, {}, f"Aer with the noise model of {device.name}", device)
        for device in devices
    ]


_lock = threading.Lock()
_AER_ENTRIES = {each.name: each for each in _aer_entries()}
_fakes: dict[str, BackendEntry] | None = None
_targets: dict[str, Target] = {}
_pools: dict[str, AerBackend] = {}


def entries() -> dict[str, BackendEntry]:
    """Every backend the catalog knows, by name (Aer names first, then devices)."""
    global _fakes
    with _lock:
        if _fakes is None:
            # Loaded on first listing only: importing the fake devices takes seconds.
            _fakes = {each.name: each for each in [*_generic_entries(), *_fake_entries()]}
        return {**_AER_ENTRIES, **_fakes}


def is_known(name: str) -> bool:
    """True if the catalog has a backend called ``name``."""
    return name in _AER_ENTRIES or name in entries()


def entry(name: str) -> BackendEntry:
    """The catalog entry called ``name``.

    Raises:
        ValueError: no backend has that name; the message lists the known names.
    """
    if name in _AER_ENTRIES:
        return _AER_ENTRIES[name]
    known = entries()
    if name not in known:
        raise ValueError(f"No backend is called {name!r}. {_known_names(known)}")
    return known[name]


def _known_names(known: dict[str, BackendEntry]) -> str:
    return (
        f"Known backends: {', '.join(known)}. "
        "For other simulator settings build your own AerBackend(...)."
    )


def target(name: str) -> Target:
    """The transpiler target of the backend called ``name``: what its simulator runs (a
    device's target for a device; plain Aer's for unknown names)."""
    with _lock:
        cached = _targets.get(name)
    if cached is not None:
        return cached
    # The same target as the name's AerBackend has, without registering a pool for it (a
    # registered pool counts as running for least_busy).
    known = entry(name) if is_known(name) else None
    if known is not None and known.device is not None:
        built: Target = known.device.target
    else:
        built = aer_target(known.aer_options if known is not None else {})
    with _lock:
        return _targets.setdefault(name, built)


def num_workers() -> int | None:
    """The cap on workers of a pool started for a name (``RAYSESSION_BACKEND_NUM_WORKERS``).

    Returns:
        The cap, or ``None`` (the default) for no cap beyond what the cluster can place.

    Raises:
        ValueError: the variable is set to something other than a whole number of at least 1.
    """
    return env_count(NUM_WORKERS_ENV, None, minimum=1)


def pool(name: str) -> AerBackend:
    """This process's backend description for the name ``name`` (one per name, so job-mode
    jobs on one name share a hidden batch). Its jobs run on the cluster's shared pool.

    Raises:
        ValueError: no backend has that name, or :func:`num_workers` finds a bad value.
    """
    known = entry(name)
    with _lock:
        existing = _pools.get(name)
        if existing is not None:
            return existing
        if known.device is not None:
            built = AerBackend.from_backend(
                known.device, name=name, max_workers=num_workers(), **known.aer_options
            )
        else:
            built = AerBackend(max_workers=num_workers(), name=name, **known.aer_options)
        _pools[name] = built
        return built


def running_pools() -> list[str]:
    """Names used in this process so far, in the order they were first used."""
    with _lock:
        return list(_pools)


def default_name() -> str:
    """The least busy name: the first whose pool already runs here, else :data:`DEFAULT_BACKEND`.

    Reusing a running pool costs no start-up and holds no further CPUs.
    """
    running = running_pools()
    return running[0] if running else DEFAULT_BACKEND
