"""The one path from coerced PUBs to a submitted job, for every front end.

V2 primitives, V1 primitives (through V2), a provider backend's ``run`` and job mode
all call :func:`submit_job`. It builds the job's spec (circuits pickled once per
circuit object and named by content), admits it into the session (or the job-mode
batch, renewed if it closed itself while idle) and, when the session grants a worker
at once, sends the job straight to that worker.
"""

from __future__ import annotations

import collections
import hashlib
import pickle
import secrets
import threading
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from qiskit import QuantumCircuit
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from ._job_mode import job_mode_batch
from ._pub_checks import check_pubs
from .backends._device import check_isa, isa_target
from .backends._partition import Kind, PubSpec, plan
from .backends.base import Backend, JobSpec
from .errors import SessionClosedError, SessionExpiredError
from .job import RuntimeJobV2, check_tags
from .options import EstimatorOptions, SamplerOptions
from .session import Session, aer_options_of

# Circuit objects whose pickled bytes and key this process remembers.
_KEYS_KEPT = 256


def submit_job(
    mode: Session | Backend,
    kind: Kind,
    pubs: list[EstimatorPub] | list[SamplerPub],
    options: EstimatorOptions | SamplerOptions,
    *,
    job_id: str | None = None,
    tags: Sequence[str] | None = None,
) -> RuntimeJobV2:
    """Submit coerced PUBs to a session, a batch or (job mode) a backend.

    Args:
        tags: The job's tags; by default ``options.environment.job_tags``:
            kept in its session's record, read with :attr:`RuntimeJobV2.tags`, changed
            with :meth:`RuntimeJobV2.update_tags`, and filtered on by
            ``QiskitRuntimeService.jobs(job_tags=...)``.

    Raises:
        ValueError: ``max_execution_time`` is not below the session's ``max_time``, a
            circuit is not ISA for a simulated device's target, a parameter value or
            precision is not finite, a circuit has a gate Aer cannot run, or a
            circuit's state would not fit in a worker's memory (see :mod:`._pub_checks`).
        TypeError: ``tags`` is not a sequence of strings.
        SessionClosedError, SessionExpiredError: the session takes no new jobs.
        QueueFullError: the session's queue is at a cap (see :class:`~raysession.Session`).
    """
    if tags is None:
        tags = options.environment.job_tags or ()
    aer_options = mode.aer_options if isinstance(mode, Session) else aer_options_of(mode)
    aer_options.update(options.raysession.backend_options)
    check_pubs(pubs, [circuit_key(pub.circuit)[0] for pub in pubs], aer_options)
    target = mode.isa_target if isinstance(mode, Session) else isa_target(mode)
    if target is not None:
        name = mode.backend() if isinstance(mode, Session) else mode.name
        for pub in pubs:
            check_isa(pub.circuit, circuit_key(pub.circuit)[0], target, name)
    if isinstance(mode, Session):
        check_execution_time(options, mode.max_time)
        spec = build_spec(
            kind, pubs, options, mode.session_id, job_id, tags=tags, storage=mode.storage
        )
        return mode._submit(spec)
    for renew in (False, True):
        batch = job_mode_batch(mode, renew=renew)
        spec = build_spec(
            kind, pubs, options, batch.session_id, job_id, tags=tags, storage=batch.storage
        )
        try:
            return batch._submit(spec, job_mode=True)
        except (SessionClosedError, SessionExpiredError):
            if renew:
                raise
            # The hidden batch closed itself while idle: the loop opens a fresh one.
    raise AssertionError("unreachable")


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
    *,
    tags: Sequence[str] = (),
    storage: str | None = None,
) -> JobSpec:
    """The job spec of coerced PUBs: circuits pickled once each and named by content.

    ``options`` are the job's snapshot (seeds drawn, see ``for_job()``); its noise model
    and ``raysession.backend_options`` become the job's Aer options.

    Raises:
        TypeError: ``tags`` is not a sequence of strings.
    """
    checked_tags = tuple(check_tags(tags))
    circuits: dict[str, bytes] = {}
    specs = []
    for pub in pubs:
        key, data = circuit_key(pub.circuit)
        circuits[key] = data
        if isinstance(pub, EstimatorPub):
            specs.append(
                PubSpec(
                    key, pub.parameter_values, observables=pub.observables, precision=pub.precision
                )
            )
        else:
            specs.append(PubSpec(key, pub.parameter_values, shots=pub.shots))
    seed = options.seed()
    if seed is None:
        seed = secrets.randbelow(2**31)
    settings = options.raysession
    aer_options = dict(settings.backend_options)
    if options.simulator.noise_model is not None:
        aer_options["noise_model"] = options.simulator.noise_model
    return JobSpec(
        kind=kind,
        pubs=tuple(specs),
        circuits=circuits,
        seed=seed,
        chunk_size=settings.chunk_size,
        run_options=dict(settings.run_options),
        max_execution_time=options.max_execution_time,
        circuit_cache=settings.circuit_cache,
        job_id=job_id or uuid.uuid4().hex,
        session_id=session_id,
        num_chunks=len(plan(specs, settings.chunk_size)),
        aer_options=aer_options,
        tags=checked_tags,
        storage=storage,
        input_bytes=sum(map(len, circuits.values())) + sum(map(pub_bytes, specs)),
        max_retries=settings.max_retries,
    )


def pub_bytes(pub: PubSpec) -> int:
    """About how many bytes a PUB's parameter values and observables take (its circuit
    is counted once per job): the arrays' bytes, and per observable term a complex
    coefficient plus 5 bytes per Pauli factor (its letter and qubit index), as Qiskit's
    ``SparseObservable`` stores them. About 0.4 µs per observable."""
    size = sum(int(array.nbytes) for array in pub.parameter_values.data.values())
    observables = pub.observables
    if observables is None:
        return size
    if hasattr(observables, "sparse_observables_array"):  # Qiskit >= 2.1
        return size + sum(
            16 * int(term.num_terms) + 5 * len(term.bit_terms)
            for term in observables.sparse_observables_array().flat
        )
    listed = observables.ravel().tolist()  # dicts of Pauli labels, read more slowly
    return size + sum(16 + len(label) for terms in listed for label in terms)


class _Known:
    __slots__ = ("circuit", "data", "key", "print")

    def __init__(
        self, circuit: QuantumCircuit, fingerprint: tuple[Any, ...], key: str, data: bytes
    ):
        self.circuit = weakref.ref(circuit)
        self.print, self.key, self.data = fingerprint, key, data


_known: collections.OrderedDict[int, _Known] = collections.OrderedDict()
_known_lock = threading.Lock()


def _fingerprint(circuit: QuantumCircuit) -> tuple[Any, ...]:
    """What an in-place edit of a circuit changes, read in microseconds: its size, its
    gate counts, its parameters, registers, global phase and name."""
    return (
        len(circuit.data),
        tuple(circuit.count_ops().items()),
        circuit.num_qubits,
        circuit.num_clbits,
        circuit.num_parameters,
        str(circuit.global_phase),
        circuit.name,
        id(circuit.layout),
    )


def circuit_key(circuit: QuantumCircuit) -> tuple[str, bytes]:
    """The content key and pickled bytes of a circuit.

    A circuit object seen before, and unchanged since (same fingerprint), reuses its
    key and bytes: pickling a 14-qubit ansatz takes about 1 ms, more than a small job
    costs otherwise. An edited circuit (a gate appended, parameters assigned in place,
    the phase changed) is pickled again. Replacing one instruction in place with one of
    the same name (``circuit.data[i] = ...``) keeps every count and is not seen: copy the
    circuit for such edits.
    """
    fingerprint = _fingerprint(circuit)
    with _known_lock:
        known = _known.get(id(circuit))
        if known is not None and known.circuit() is circuit and known.print == fingerprint:
            _known.move_to_end(id(circuit))
            return known.key, known.data
    data = pickle.dumps(circuit, protocol=pickle.HIGHEST_PROTOCOL)
    key = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        entry = _Known(circuit, fingerprint, key, data)
    except TypeError:  # not weak-referenceable: never cached
        return key, data
    with _known_lock:
        _known[id(circuit)] = entry
        while len(_known) > _KEYS_KEPT:
            _known.popitem(last=False)
    return key, data
