"""The pool's messages and settings: worker shapes, leases, status reports, environment knobs.

Plain data shared by the pool actor (:mod:`._pool`) and the processes that lease its
workers (:mod:`._pool_client`); imports no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from .._env import env_seconds

POOL_NAME = "pool"
IDLE_ENV = "RAYSESSION_WORKER_IDLE_S"
PLACEMENT_ENV = "RAYSESSION_PLACEMENT_TIMEOUT_S"


@dataclass(frozen=True)
class Shape:
    """The resources one worker needs."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def resources(self) -> dict[str, float]:
        """The shape as a Ray resource dict (zero entries left out)."""
        found = {"CPU": self.num_cpus, "GPU": self.num_gpus}
        return {name: amount for name, amount in found.items() if amount}


@dataclass(frozen=True)
class PoolConfig:
    """How the pool behaves; read from the environment of the process that creates it."""

    idle_s: float = 60.0
    placement_timeout_s: float = 60.0

    @classmethod
    def from_env(cls) -> PoolConfig:
        """The settings in ``RAYSESSION_WORKER_IDLE_S`` and ``RAYSESSION_PLACEMENT_TIMEOUT_S``.

        Raises:
            ValueError: a variable is set to something other than a positive number of seconds.
        """
        return cls(
            idle_s=env_seconds(IDLE_ENV, 60.0),
            placement_timeout_s=env_seconds(PLACEMENT_ENV, 60.0),
        )


@dataclass(frozen=True)
class Lease:
    """A worker granted to one caller until it calls :meth:`PoolActor.release`."""

    worker_id: str
    """The worker's Ray actor name (namespace ``raysession``); callers cache its handle."""
    sequence: int
    """Grants the pool made before this one (over its whole life)."""


class WorkerStatus(BaseModel):
    """One worker of the pool."""

    model_config = ConfigDict(frozen=True)

    worker_id: str
    num_cpus: float
    num_gpus: float
    node_id: str
    state: str
    """``"starting"``, ``"idle"`` or ``"busy"``."""
    client: str | None
    """The session (or batch) whose chunk it runs, when busy."""
    cached_circuits: int | None = None
    """Circuits in its cache; ``None`` while it starts or if it did not answer in time."""
    cache_bytes: int | None = None
    """Pickled bytes of those circuits."""

    @property
    def shape(self) -> str:
        """Its resource shape, as a label: ``"1 CPU"``, ``"4 CPU + 1 GPU"``."""
        label = f"{self.num_cpus:g} CPU"
        return f"{label} + {self.num_gpus:g} GPU" if self.num_gpus else label


class PoolStatus(BaseModel):
    """What :func:`pool_status` reports."""

    model_config = ConfigDict(frozen=True)

    workers: list[WorkerStatus]
    waiting: dict[str, int]
    """Leases waiting for a worker, by client (session id)."""
    grants: dict[str, int]
    """Leases granted so far, by client."""
    replaced: int
    """Workers that died (crashed or killed) while the pool lived."""
    config: dict[str, float]
    """The pool's settings (``idle_s``, ``placement_timeout_s``); empty with no pool."""
    running: bool = True
    """False when no pool runs on the cluster (nothing was started to report this)."""

    def by_shape(self) -> dict[str, dict[str, int]]:
        """Workers by shape label (see :attr:`WorkerStatus.shape`), counted by state:
        ``{"1 CPU": {"busy": 1, "idle": 1, "starting": 0}}``."""
        found: dict[str, dict[str, int]] = {}
        for worker in self.workers:
            counts = found.setdefault(worker.shape, {"busy": 0, "idle": 0, "starting": 0})
            counts[worker.state] = counts.get(worker.state, 0) + 1
        return found

    @property
    def num_waiting(self) -> int:
        """Leases waiting for a worker: the pool's queue, over every session."""
        return sum(self.waiting.values())

    @property
    def num_cached_circuits(self) -> int:
        """Circuits cached over all workers that answered."""
        return sum(w.cached_circuits or 0 for w in self.workers)

    @property
    def cache_bytes(self) -> int:
        """Pickled bytes of the circuits cached over all workers that answered."""
        return sum(w.cache_bytes or 0 for w in self.workers)
