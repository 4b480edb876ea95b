"""Splitting a job's PUBs into chunks of work and joining the chunks' results; pure, no Ray.

A job is a list of PUBs. :func:`plan` packs small PUBs together and splits a
large PUB's sweep along the leading axis of its broadcast shape, so that no
chunk holds more than ``chunk_size`` parameter sets (bindings), unless a single
row of the sweep is larger. The plan depends only on the PUBs and
``chunk_size``: never on the number of workers or on timing. Each chunk gets
its own seed, derived from the job's seed and the chunk's index
(:func:`chunk_seed`), so seeded jobs give the same numbers on any pool.

:func:`join` reverses the split: evs/stds are concatenated, ``BitArray`` s are
joined with :meth:`~qiskit.primitives.BitArray.concatenate` along axis 0, and
the result has the shape and the metadata keys a single Aer run would give
(see :func:`join` for the one part of the metadata no two runs share).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult, SamplerPubResult
from qiskit.primitives.containers.bindings_array import BindingsArray
from qiskit.primitives.containers.observables_array import ObservablesArray

Kind = Literal["estimator", "sampler"]


@dataclass(frozen=True)
class PubSpec:
    """A coerced, validated PUB whose circuit is named by its content key.

    The circuit itself travels once, in the job's circuit table, so the session
    actor plans and forwards jobs without (un)pickling circuits.
    """

    circuit_key: str
    parameter_values: BindingsArray
    observables: ObservablesArray | None = None
    """Set for estimator PUBs."""
    precision: float | None = None
    shots: int | None = None

    @property
    def is_estimator(self) -> bool:
        """True for an estimator PUB."""
        return self.observables is not None


Pub = PubSpec


@dataclass(frozen=True)
class PubShape:
    """What joining a PUB's chunk results needs of it: its result's shape and its kind."""

    shape: tuple[int, ...]
    is_estimator: bool

    @classmethod
    def of(cls, pub: Pub) -> PubShape:
        """The shape of ``pub``'s result."""
        return cls(_padded_shapes(pub)[0], pub.is_estimator)


@dataclass(frozen=True)
class Piece:
    """Rows ``start:stop`` along axis 0 of PUB ``pub_index``; ``stop=None``: the whole PUB."""

    pub_index: int
    start: int = 0
    stop: int | None = None

    @property
    def is_whole(self) -> bool:
        """True if the piece is the PUB itself, unsplit."""
        return self.stop is None


@dataclass(frozen=True)
class Chunk:
    """One unit of work for one worker: pieces of one or more PUBs, in job order."""

    index: int
    pieces: tuple[Piece, ...]


def _padded_shapes(pub: Pub) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The PUB's broadcast shape and its parameter values' shape, padded to the same rank."""
    params_shape = pub.parameter_values.shape
    if pub.observables is not None:
        shape = np.broadcast_shapes(params_shape, pub.observables.shape)
    else:
        shape = params_shape
    padded = (1,) * (len(shape) - len(params_shape)) + tuple(params_shape)
    return tuple(shape), padded


def num_bindings(pub: Pub) -> int:
    """Parameter sets Aer simulates for this PUB (at least one)."""
    return max(1, int(math.prod(pub.parameter_values.shape)))


def _rows(pub: Pub) -> int:
    """Rows along axis 0 the PUB can be split into (1 if it cannot be split).

    Splitting only pays where the parameter values vary along axis 0: a row of
    the broadcast shape that only changes observables re-simulates every binding.
    """
    shape, params = _padded_shapes(pub)
    if not shape or params[0] != shape[0]:
        return 1
    return shape[0]


def plan(pubs: list[Pub] | tuple[Pub, ...], chunk_size: int) -> list[Chunk]:
    """Split PUBs into chunks of at most ``chunk_size`` bindings each.

    Args:
        pubs: Coerced PUBs of one job.
        chunk_size: Most bindings in a chunk (a single sweep row may exceed it).

    Returns:
        Chunks in job order, covering every PUB exactly once.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, not {chunk_size}")
    chunks: list[list[Piece]] = []
    current: list[Piece] = []
    load = 0
    for index, pub in enumerate(pubs):
        cost = num_bindings(pub)
        rows = _rows(pub)
        if cost > chunk_size and rows > 1:
            if current:
                chunks.append(current)
                current, load = [], 0
            per_row = cost // rows
            step = max(1, chunk_size // per_row)
            num = math.ceil(rows / step)
            # Even sizes: 2000 rows at 256 -> 8 chunks of 250, not 7 of 256 and one of 208.
            bounds = [round(i * rows / num) for i in range(num + 1)]
            chunks.extend([[Piece(index, a, b)] for a, b in itertools.pairwise(bounds)])
            continue
        if current and load + cost > chunk_size:
            chunks.append(current)
            current, load = [], 0
        current.append(Piece(index))
        load += cost
    if current:
        chunks.append(current)
    return [Chunk(i, tuple(pieces)) for i, pieces in enumerate(chunks)]


def chunk_seed(seed: int, index: int, num_chunks: int) -> int:
    """The seed chunk ``index`` runs with: the job's own seed if the job is one chunk."""
    if num_chunks == 1:
        return seed
    state = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1, dtype=np.uint32)
    return int(state[0])


def _slice_rows(array: Any, ndim: int, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of ``array`` viewed at rank ``ndim``; a size-1 axis is kept whole."""
    shape = tuple(array.shape)
    padded = (1,) * (ndim - len(shape)) + shape
    if padded != shape:
        array = array.reshape(padded)
    return array if padded[0] == 1 else array[start:stop]


def sub_pub(pub: Pub, piece: Piece) -> Pub:
    """The PUB that computes ``piece`` of ``pub``."""
    if piece.is_whole:
        return pub
    assert piece.stop is not None
    shape, _ = _padded_shapes(pub)
    values = _slice_rows(pub.parameter_values, len(shape), piece.start, piece.stop)
    observables = pub.observables
    if observables is not None:
        observables = _slice_rows(observables, len(shape), piece.start, piece.stop)
    return dataclasses.replace(pub, parameter_values=values, observables=observables)


def chunk_pubs(pubs: list[Pub] | tuple[Pub, ...], chunk: Chunk) -> list[Pub]:
    """The PUBs a worker runs for ``chunk``."""
    return [sub_pub(pubs[piece.pub_index], piece) for piece in chunk.pieces]


def join(
    pubs: list[Pub] | tuple[Pub, ...] | list[PubShape],
    chunks: list[Chunk],
    chunk_results: list[list[PubResult]],
) -> PrimitiveResult[PubResult]:
    """Reassemble chunk results into the job's result, one PUB result per PUB, in job order.

    The metadata is exactly that of ``qiskit_aer.primitives``: ``{"version": 2}`` for the
    job, and per PUB ``target_precision`` (estimator) or ``shots`` (sampler),
    ``circuit_metadata`` and ``simulator_metadata``, with nothing added. A PUB split
    across chunks takes its first piece's metadata, except the simulator's timings
    (``simulator_metadata["time_taken_*"]``, seconds), which are summed over its pieces.
    Those timings are the one unavoidable difference from a single Aer run: they
    differ between any two runs, Aer's own included; every other key and value is
    what one Aer run of the same input gives on the same machine. (raysession's own
    details, the seeds, chunks and workers, are in the job's metrics.)

    Args:
        pubs: The job's PUBs, or their :class:`PubShape`.
        chunks: The plan the results were computed from.
        chunk_results: For each chunk, one result per piece, in piece order.

    Returns:
        The result a single Aer run would give.
    """
    parts: list[list[PubResult]] = [[] for _ in pubs]
    kinds: list[Pub | PubShape] = list(pubs)
    for chunk, results in zip(chunks, chunk_results, strict=True):
        for piece, result in zip(chunk.pieces, results, strict=True):
            parts[piece.pub_index].append(result)
    joined = [
        _join_pub(pub, pieces) if len(pieces) > 1 else pieces[0]
        for pub, pieces in zip(kinds, parts, strict=True)
    ]
    return PrimitiveResult(joined, metadata={"version": 2})


TIMING_PREFIX = "time_taken"
"""Keys of Aer's ``simulator_metadata`` that start with this are seconds a run took."""


def _join_metadata(pieces: list[PubResult]) -> dict[str, Any]:
    """The first piece's metadata, with the simulator's timings summed over the pieces."""
    metadata = dict(pieces[0].metadata)
    simulator = metadata.get("simulator_metadata")
    if isinstance(simulator, dict):
        simulator = dict(simulator)
        for key, value in simulator.items():
            if key.startswith(TIMING_PREFIX) and isinstance(value, int | float):
                simulator[key] = sum(p.metadata["simulator_metadata"].get(key, 0) for p in pieces)
        metadata["simulator_metadata"] = simulator
    return metadata


def whole_job(num_pubs: int) -> list[Chunk]:
    """The plan of a job run as one chunk."""
    return [Chunk(0, tuple(Piece(i) for i in range(num_pubs)))]


def _join_pub(pub: Pub | PubShape, pieces: list[PubResult]) -> PubResult:
    shape = pub.shape if isinstance(pub, PubShape) else _padded_shapes(pub)[0]
    first = pieces[0]
    metadata = _join_metadata(pieces)
    if pub.is_estimator:
        evs = np.concatenate([np.asarray(p.data.evs) for p in pieces], axis=0)
        stds = np.concatenate([np.asarray(p.data.stds) for p in pieces], axis=0)
        return PubResult(DataBin(evs=evs, stds=stds, shape=shape), metadata=metadata)
    fields = {
        name: BitArray.concatenate([getattr(p.data, name) for p in pieces], axis=0)
        for name in first.data
    }
    return SamplerPubResult(DataBin(**fields, shape=shape), metadata=metadata)
