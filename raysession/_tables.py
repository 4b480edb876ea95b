"""Human output of the ``raysession`` command: aligned tables and ``name: value`` fields."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ._messages import JobInfo, SessionDetails
from .backends import WorkerStatus


def when(timestamp: float | None) -> str:
    """A UNIX time as local ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows as aligned columns under their headers."""
    cells = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _owner(details: SessionDetails) -> str:
    owner = details.owner
    return "-" if owner is None else f"{owner.user}@{owner.host}"


def sessions_table(sessions: Sequence[SessionDetails]) -> str:
    """One row per session: id, mode, backend, state, owner, times and job counts."""
    headers = ["ID", "MODE", "BACKEND", "STATE", "OWNER", "CREATED", "STARTED"]
    return table([*headers, "QUEUED", "RUNNING", "FINISHED"], [_session_row(s) for s in sessions])


def _session_row(s: SessionDetails) -> list[object]:
    return [
        s.id,
        s.mode,
        s.backend_name,
        s.state.value,
        _owner(s),
        when(s.created_at),
        when(s.started_at),
        s.num_queued,
        s.num_running,
        s.num_finished,
    ]


def jobs_table(jobs: Sequence[JobInfo]) -> str:
    """One row per job: id, sequence, primitive, status, times, chunks, tags, error class."""
    headers = ["JOB", "SEQ", "PRIMITIVE", "STATUS", "CREATED", "STARTED", "FINISHED", "CHUNKS"]
    return table([*headers, "TAGS", "ERROR"], [_job_row(j) for j in jobs])


def _job_row(j: JobInfo) -> list[object]:
    return [
        j.job_id,
        j.metrics.sequence,
        j.primitive_id or "-",
        j.status.value,
        when(j.metrics.created),
        when(j.metrics.running),
        when(j.metrics.finished),
        j.metrics.num_chunks,
        ",".join(j.tags) or "-",
        j.error_type or "-",
    ]


def fields(pairs: Sequence[tuple[str, object]]) -> str:
    """``Name:  value`` lines, the values aligned."""
    width = max(len(name) for name, _ in pairs)
    return "\n".join(f"{name + ':':<{width + 1}}  {value}" for name, value in pairs)


def worker_row(w: WorkerStatus) -> list[object]:
    """A pool worker's row: id, shape, state, session, node, cached circuits and bytes."""
    cached = ["-" if n is None else n for n in (w.cached_circuits, w.cache_bytes)]
    return [w.worker_id, w.shape, w.state, w.client or "-", w.node_id[:12], *cached]


def session_fields(details: SessionDetails) -> str:
    """A session's details as ``Name:  value`` lines."""
    owner = details.owner
    opener = "-" if owner is None else f"{owner.user}@{owner.host} (Ray job {owner.ray_job_id})"
    jobs = (
        f"{details.num_jobs} accepted: {details.num_queued} queued, "
        f"{details.num_running} running, {details.num_finished} finished"
    )
    return fields(
        [
            ("Session", details.id),
            ("Mode", details.mode),
            ("Backend", details.backend_name),
            ("State", f"{details.state.value} ({details.state.status()})"),
            ("Owner", opener),
            ("Created", when(details.created_at)),
            ("Started", when(details.started_at)),
            ("Closed", when(details.closed_at)),
            ("Max time", f"{details.max_time} s"),
            ("Usage", f"{details.usage_time:.1f} s"),
            ("Jobs", jobs),
        ]
    )


def job_fields(info: JobInfo) -> str:
    """A job's record as ``Name:  value`` lines."""
    m = info.metrics
    ran = "-" if m.execution_s is None else f"{m.execution_s:.3f} s"
    pairs: list[tuple[str, object]] = [
        ("Job", info.job_id),
        ("Session", info.session_id),
        ("Primitive", info.primitive_id or "-"),
        ("Status", info.status.value),
        ("Sequence", m.sequence),
        ("Created", when(m.created)),
        ("Started", when(m.running)),
        ("Finished", when(m.finished)),
        ("Ran", ran),
        ("Chunks", m.num_chunks),
        ("Workers", ", ".join(m.workers) or "-"),
        ("Retries", m.retries),
        ("Seed", "-" if m.seed is None else m.seed),
        ("Tags", ", ".join(info.tags) or "-"),
    ]
    if info.error_message is not None:
        pairs.append(("Error", f"{info.error_type}: {info.error_message}"))
    return fields(pairs)
