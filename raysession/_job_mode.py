"""Job mode (``mode=backend``): the hidden batch per backend and process that runs its jobs.

Job mode has no session to the user; underneath, jobs go through one batch per
backend and process. The batch closes itself after ``RAYSESSION_JOB_MODE_IDLE_S``
seconds without work (default 10), when its backend is closed, and when the
process exits, so job mode leaves nothing behind.
"""

from __future__ import annotations

import atexit
import threading

import ray

from ._connect import ensure_ray
from ._env import env_seconds
from ._log import get_logger
from .backends.aer import on_close
from .backends.base import Backend
from .session import Batch

logger = get_logger(__name__)

IDLE_ENV = "RAYSESSION_JOB_MODE_IDLE_S"

_lock = threading.Lock()
_batches: dict[str, Batch] = {}
# The Ray connection each hidden batch was opened on: one from an earlier ray.init()
# is gone with its cluster.
_opened_on: dict[str, tuple[str, str]] = {}


def idle_s() -> float:
    """Seconds a hidden batch waits without work before closing (``RAYSESSION_JOB_MODE_IDLE_S``).

    Raises:
        ValueError: the variable is set to something other than a positive number of seconds.
    """
    return env_seconds(IDLE_ENV, 10.0)


def job_mode_batch(backend: Backend, *, renew: bool = False) -> Batch:
    """This process's hidden batch on ``backend``; a new one if ``renew``, if none is open,
    or if the open one belongs to an earlier Ray connection (``ray.shutdown()``, ``ray.init()``).

    Raises:
        ValueError: ``RAYSESSION_JOB_MODE_IDLE_S`` is invalid (read on each call, before Ray;
            see :func:`idle_s`).
    """
    idle = idle_s()  # a bad value is reported before Ray starts
    ensure_ray()
    context = ray.get_runtime_context()
    connection = (context.get_node_id(), context.get_job_id())
    with _lock:
        batch = _batches.get(backend.backend_id)
        if batch is None or renew or _opened_on.get(backend.backend_id) != connection:
            batch = Batch(backend, interactive_timeout=idle, idle_timeout=idle)
            if not _batches:
                atexit.register(close_all)
            if backend.backend_id not in _batches:
                on_close(backend.backend_id, lambda: _close(backend.backend_id))
            _batches[backend.backend_id] = batch
            _opened_on[backend.backend_id] = connection
        return batch


def _close(backend_id: str) -> None:
    with _lock:
        batch = _batches.pop(backend_id, None)
        _opened_on.pop(backend_id, None)
    if batch is not None:
        batch.close()


def close_all() -> None:
    """Close every hidden batch of this process (at exit)."""
    with _lock:
        batches = list(_batches.values())
        _batches.clear()
        _opened_on.clear()
    for batch in batches:
        try:
            batch.close()
        except Exception:  # at exit Ray may already be gone; the batch then closes when idle
            logger.debug("could not close a job-mode batch at exit", exc_info=True)
