"""The backend seam: the only surface a session actor calls, and the job spec it passes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import ray
from qiskit.primitives import PrimitiveResult, PubResult

from ._partition import Kind, PubSpec


@dataclass(frozen=True)
class JobSpec:
    """Everything a backend needs to run one job; built and validated by a primitive."""

    kind: Kind
    pubs: tuple[PubSpec, ...]
    circuits: dict[str, bytes]
    """Pickled circuits by content key: every key the PUBs name."""
    seed: int
    """The job's seed; chunks derive theirs from it."""
    chunk_size: int
    run_options: dict[str, Any] = field(default_factory=dict)
    max_execution_time: float | None = None
    circuit_cache: bool = True
    """Send each circuit to a worker once and refer to it by key afterwards."""
    job_id: str = ""
    session_id: str | None = None


@dataclass
class BackendRun:
    """What a backend reports of a job while it runs (for the job's metrics)."""

    num_chunks: int = 0
    workers: list[str] = field(default_factory=list)
    """Ids of the workers that ran the job's chunks, in the order they finished."""
    retries: int = 0
    """Chunks that ran again because their worker died."""


@runtime_checkable
class Backend(Protocol):
    """What a session actor needs from a backend.

    Implementations must pickle (a session actor gets its own copy) and must
    not call back into the session.
    """

    @property
    def name(self) -> str:
        """The backend's name, as reported in session details."""
        ...

    @property
    def backend_id(self) -> str:
        """A unique id of the backend instance; pickled copies share it."""
        ...

    @property
    def num_workers(self) -> int:
        """How many chunks the backend runs at once (a Batch runs this many jobs)."""
        ...

    async def run(
        self, spec: JobSpec, *, deadline: float | None = None, record: BackendRun | None = None
    ) -> ray.ObjectRef[PrimitiveResult[PubResult]]:
        """Run a job; return the ref of its result once it is ready.

        Cancelling the coroutine stops the job (queued chunks are dropped and
        running ones interrupted).

        Args:
            spec: The job.
            deadline: UNIX time after which no further chunk of the job may start.
            record: Filled with the job's chunks, workers and retries as it runs.
        """
        ...
