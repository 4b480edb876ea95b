"""Backends that run raysession jobs: the Backend seam and the Aer worker pool."""

from .aer import AerBackend
from .base import Backend, BackendRun, JobSpec

__all__ = ["AerBackend", "Backend", "BackendRun", "JobSpec"]
