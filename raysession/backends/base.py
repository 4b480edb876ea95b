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
    """A job handed to a backend: the ref of its result and what is needed to stop it."""

    result: ray.ObjectRef[PrimitiveResult[PubResult]]
    chunk_refs: list[ray.ObjectRef[Any]]
    workers: tuple[str, ...]
    """Ids of the workers the chunks were sent to, one per chunk."""


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
        """How many chunks the backend runs at once."""
        ...

    def run(self, spec: JobSpec, *, deadline: float | None = None) -> BackendRun:
        """Start a job and return at once.

        Args:
            spec: The job.
            deadline: UNIX time after which no further chunk of the job may start.
        """
        ...

    def stop(self, run: BackendRun) -> None:
        """Stop a started job: drop its queued chunks and interrupt running ones."""
        ...
