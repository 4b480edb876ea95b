"""Backends that run raysession jobs: the Backend seam and the Aer worker pool."""

from ._pool import pool_status, shutdown_pool
from ._pool_protocol import PoolStatus, WorkerStatus
from .aer import AerBackend
from .base import Backend, BackendRun, JobSpec

__all__ = [
    "AerBackend",
    "Backend",
    "BackendRun",
    "JobSpec",
    "PoolStatus",
    "WorkerStatus",
    "pool_status",
    "shutdown_pool",
]
