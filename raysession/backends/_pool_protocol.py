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
