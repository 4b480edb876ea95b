"""raysession's metrics, exported through Ray's own (:mod:`ray.util.metrics`).

Ray's dashboard and its Prometheus endpoint (each node's ``metrics_export_port``) show
them with the prefix ``ray_``:

=========================================  =========  ===============================
metric                                      kind       tags
=========================================  =========  ===============================
``raysession_jobs_submitted_total``         counter    session, backend, mode
``raysession_jobs_completed_total``         counter    session, backend, mode
``raysession_jobs_failed_total``            counter    session, backend, mode
``raysession_jobs_cancelled_total``         counter    session, backend, mode
``raysession_queue_depth``                  gauge      session, backend, mode
``raysession_job_queue_seconds``            histogram  session, backend, mode
``raysession_job_run_seconds``              histogram  session, backend, mode
``raysession_worker_busy_fraction``         gauge      shape (``"cpu=1,gpu=0"``)
``raysession_circuit_cache_hits_total``     counter    worker
``raysession_circuit_cache_misses_total``   counter    worker
=========================================  =========  ===============================

Each process makes each metric once; recording one is a few microseconds. Imports
nothing from raysession, so the backends record theirs too.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ray.util.metrics import Counter, Gauge, Histogram

_SESSION_TAGS = ("session", "backend", "mode")
_SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0, 7200.0]


@cache
def _session_metrics() -> dict[str, Any]:
    def counter(name: str, what: str) -> Counter:
        return Counter(f"raysession_jobs_{name}", description=what, tag_keys=_SESSION_TAGS)

    return {
        "submitted": counter("submitted", "Jobs a session accepted."),
        "DONE": counter("completed", "Jobs that finished with a result."),
        "ERROR": counter("failed", "Jobs that failed."),
        "CANCELLED": counter("cancelled", "Jobs that were cancelled."),
        "depth": Gauge(
            "raysession_queue_depth",
            description="Jobs waiting in a session's queue.",
            tag_keys=_SESSION_TAGS,
        ),
        "queue_s": Histogram(
            "raysession_job_queue_seconds",
            description="Seconds from a job's acceptance to its start.",
            boundaries=_SECONDS,
            tag_keys=_SESSION_TAGS,
        ),
        "run_s": Histogram(
            "raysession_job_run_seconds",
            description="Seconds from a job's start to its end.",
            boundaries=_SECONDS,
            tag_keys=_SESSION_TAGS,
        ),
    }


class SessionMetrics:
    """The metrics of one session, recorded by its actor."""

    def __init__(self, session_id: str, backend: str, mode: str) -> None:
        self._tags = {"session": session_id, "backend": backend, "mode": mode}
        self._metrics = _session_metrics()
        self._depth = -1

    def submitted(self) -> None:
        self._metrics["submitted"].inc(1, tags=self._tags)

    def started(self, queue_s: float) -> None:
        self._metrics["queue_s"].observe(max(0.0, queue_s), tags=self._tags)

    def ended(self, status: str, run_s: float | None) -> None:
        """A job ended ``"DONE"``, ``"ERROR"`` or ``"CANCELLED"``."""
        self._metrics[str(status)].inc(1, tags=self._tags)
        if run_s is not None:
            self._metrics["run_s"].observe(max(0.0, run_s), tags=self._tags)

    def queue_depth(self, depth: int) -> None:
        if depth != self._depth:  # set on change only: it is read at every poke
            self._depth = depth
            self._metrics["depth"].set(depth, tags=self._tags)


@cache
def _busy_gauge() -> Gauge:
    return Gauge(
        "raysession_worker_busy_fraction",
        description="Fraction of the pool's workers of a shape that run a chunk.",
        tag_keys=("shape",),
    )


def worker_busy_fraction(shape: str, busy: int, total: int) -> None:
    """Record the pool's busy fraction for workers of ``shape`` (0 with no worker)."""
    _busy_gauge().set(busy / total if total else 0.0, tags={"shape": shape})


@cache
def _cache_counters() -> tuple[Counter, Counter]:
    return (
        Counter(
            "raysession_circuit_cache_hits",
            description="Circuits a worker found in its cache.",
            tag_keys=("worker",),
        ),
        Counter(
            "raysession_circuit_cache_misses",
            description="Circuits a worker unpickled (first use, or evicted).",
            tag_keys=("worker",),
        ),
    )


def circuit_cache(worker_id: str, *, hit: bool) -> None:
    """Count one circuit lookup of a worker's cache."""
    _cache_counters()[0 if hit else 1].inc(1, tags={"worker": worker_id})
