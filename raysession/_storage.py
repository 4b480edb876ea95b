"""Durable job records and results: written as jobs end, read by any driver, cleaned up.

Workers write each chunk's result (:mod:`.backends._store`); a session actor writes
each job's final record, with the plan that joins a split job's chunks, and the
session's own details when it ends. Any process that reaches the same storage reads
them: ``QiskitRuntimeService().job(job_id).result()`` or
``Session.from_id(session_id).job(job_id)`` work after the submitter exited, after
the session ended and after the Ray cluster was stopped.

Bounds: records older than ``RAYSESSION_STORAGE_RETENTION`` (a duration, ``"7d"`` by
default) are removed, then the oldest until the storage holds at most
``RAYSESSION_STORAGE_MAX_BYTES`` (10 GiB by default). :func:`cleanup_storage` does it;
every session actor does it when it ends, at most once an hour per storage.

The files are pickles: anyone who can write to the storage can run code in the
processes that read it, exactly as anyone who can reach the Ray cluster can. Keep
both private.
"""

from __future__ import annotations

import json
import pickle
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ._duration import parse_duration
from ._env import env_count, env_duration
from ._log import get_logger
from ._messages import JobInfo, JobStatus, SessionDetails
from .backends._partition import join
from .backends._store import (
    chunk_path,
    filesystem,
    job_dir,
    read_place,
    record_path,
    storage_uri,
    write_bytes,
    write_new,
)
from .backends.base import JoinPlan
from .errors import ResultUnavailableError

logger = get_logger(__name__)

RETENTION_ENV = "RAYSESSION_STORAGE_RETENTION"
MAX_BYTES_ENV = "RAYSESSION_STORAGE_MAX_BYTES"
DEFAULT_RETENTION = "7d"
DEFAULT_MAX_BYTES = 10 * 2**30
# Seconds between automatic cleanups of one storage.
CLEANUP_EVERY_S = 3600.0
# Seconds a reader waits for a DONE job's chunk files (workers write them after returning).
CHUNK_WAIT_S = 30.0
# Seconds a reader whose session just handed over a job waits for the job's record.
RECORD_WAIT_S = 5.0

__all__ = ["CleanupReport", "cleanup_storage"]


class StoredJob(BaseModel):
    """A job's record as stored: its final :class:`JobInfo` and how to read its result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    info: JobInfo
    num_chunks: int
    """Chunk files of a DONE job."""
    joined: bool
    """The chunks are joined with the stored plan (``join.pkl``); else chunk 0 is the result."""
    places: tuple[str, ...] = ()
    """Where each chunk's result is stored (see :func:`.backends._store.write_chunk`);
    ``""`` or missing: in its chunk file."""


class CleanupReport(BaseModel):
    """What :func:`cleanup_storage` removed."""

    model_config = ConfigDict(frozen=True)

    jobs_removed: int
    """Job directories (records, large results)."""
    segments_removed: int = 0
    """Segment files of small results (see :mod:`.backends._store`)."""
    sessions_removed: int
    bytes_freed: int
    bytes_kept: int


def retention_s() -> int:
    """Seconds records are kept (``RAYSESSION_STORAGE_RETENTION``, default 7 days).

    Raises:
        ValueError: the value is not a duration such as ``"7d"`` or ``"12h"``.
    """
    return env_duration(RETENTION_ENV, DEFAULT_RETENTION)


def max_bytes() -> int:
    """Most bytes the storage keeps (``RAYSESSION_STORAGE_MAX_BYTES``, default 10 GiB)."""
    return env_count(MAX_BYTES_ENV, DEFAULT_MAX_BYTES, minimum=1)


# ---------------------------------------------------------------------- writing


def write_job(
    uri: str,
    info: JobInfo,
    num_chunks: int,
    plan: JoinPlan | None,
    places: list[str] | tuple[str, ...] = (),
) -> None:
    """Store a final job's record (and, for a split job, the plan that joins its chunks).
    Called by the session actor when the job ends; ``places`` are its chunks' places."""
    if plan is not None:
        write_bytes(uri, f"{job_dir(uri, info.job_id)}/join.pkl", pickle.dumps(plan))
    kept = tuple(places) if any(places) else ()
    record = StoredJob(info=info, num_chunks=num_chunks, joined=plan is not None, places=kept)
    write_new(uri, record_path(uri, info.job_id), record.model_dump_json().encode())


def write_session(uri: str, details: SessionDetails, job_ids: list[str]) -> None:
    """Store a session's final details and its jobs' ids."""
    root = filesystem(uri)[1]
    data = json.dumps({"details": details.model_dump(mode="json"), "job_ids": job_ids})
    write_bytes(uri, f"{root}/sessions/{details.id}.json", data.encode())


# ---------------------------------------------------------------------- reading


def read_job(job_id: str, uri: str | None = None) -> StoredJob | None:
    """A job's stored record, or ``None`` (not stored, or storage is off)."""
    uri = uri or storage_uri()
    if uri is None:
        return None
    fs, _ = filesystem(uri)
    try:
        data = fs.cat_file(record_path(uri, job_id))
    except (FileNotFoundError, NotADirectoryError):
        try:  # where raysession 0.x before the segments kept it
            data = fs.cat_file(f"{job_dir(uri, job_id)}/record.json")
        except (FileNotFoundError, NotADirectoryError):
            return None
    try:
        return StoredJob.model_validate_json(data)
    except ValidationError:  # being written this moment (see write_new), or torn by a crash
        return None


def read_session(
    session_id: str, uri: str | None = None
) -> tuple[SessionDetails, list[str]] | None:
    """A finished session's stored details and job ids, or ``None``."""
    uri = uri or storage_uri()
    if uri is None:
        return None
    fs, root = filesystem(uri)
    try:
        data = json.loads(fs.cat_file(f"{root}/sessions/{session_id}.json"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    return SessionDetails.model_validate(data["details"]), list(data["job_ids"])


def read_result(stored: StoredJob, uri: str | None = None, wait_s: float = CHUNK_WAIT_S) -> Any:
    """The stored result of a DONE job, joined from its chunk files.

    Raises:
        ResultUnavailableError: the job has no stored result (it did not finish with
            one, or its files are gone).
    """
    uri = uri or storage_uri()
    info = stored.info
    if uri is None or info.status is not JobStatus.DONE:
        raise ResultUnavailableError(
            f"Job {info.job_id} ended {info.status}; it has no result.",
            session_id=info.session_id,
            job_id=info.job_id,
        )
    fs, _ = filesystem(uri)
    deadline = time.monotonic() + wait_s
    values = []
    for index in range(stored.num_chunks):
        place = stored.places[index] if index < len(stored.places) else ""
        if place:
            try:
                values.append(pickle.loads(read_place(uri, place)))
            except (FileNotFoundError, NotADirectoryError):
                raise ResultUnavailableError(
                    f"Job {info.job_id}'s stored result is gone: its segment ({place}) was "
                    f"removed (cleanup), or storage {uri} is not shared by every node.",
                    session_id=info.session_id,
                    job_id=info.job_id,
                ) from None
            continue
        path = chunk_path(uri, info.job_id, index)
        while True:
            try:
                values.append(pickle.loads(fs.cat_file(path)))
                break
            except (FileNotFoundError, NotADirectoryError):
                if time.monotonic() > deadline:  # workers write after they return, briefly
                    raise ResultUnavailableError(
                        f"Job {info.job_id}'s stored result is incomplete: {path} is missing "
                        f"(removed, or storage {uri} is not shared by every node).",
                        session_id=info.session_id,
                        job_id=info.job_id,
                    ) from None
                time.sleep(0.05)
    if not stored.joined:
        return values[0]
    plan: JoinPlan = pickle.loads(fs.cat_file(f"{job_dir(uri, info.job_id)}/join.pkl"))
    return join(plan.shapes, plan.chunks, values)


def stored_result(job_id: str, uri: str | None = None) -> Any:
    """A job's stored result, read when its refs are gone (see :func:`read_result`).

    Raises:
        ResultUnavailableError: the job has no stored record or result.
    """
    deadline = time.monotonic() + RECORD_WAIT_S
    stored = read_job(job_id, uri)
    while stored is None and time.monotonic() < deadline:  # its session writes it as it ends
        time.sleep(0.05)
        stored = read_job(job_id, uri)
    if stored is None:
        raise ResultUnavailableError(
            f"Job {job_id}'s result is neither kept by its session nor stored "
            f"(storage: {uri or storage_uri()}).",
            job_id=job_id,
        )
    return read_result(stored, uri)


# ---------------------------------------------------------------------- cleanup


def cleanup_storage(
    *,
    retention: int | str | None = None,
    max_bytes_kept: int | None = None,
    storage: str | None = None,
) -> CleanupReport:
    """Remove stored jobs, segments and sessions older than the retention, then the
    oldest jobs and segments until the storage holds at most ``max_bytes_kept``.

    A segment holds the small results its worker stored over up to an hour; it is as
    old as its last one, so a small result is kept up to an hour past the retention.

    Args:
        retention: Seconds, or a duration such as ``"12h"``; default
            ``RAYSESSION_STORAGE_RETENTION`` (7 days).
        max_bytes_kept: Default ``RAYSESSION_STORAGE_MAX_BYTES`` (10 GiB).
        storage: A directory or URI; default ``RAYSESSION_STORAGE``.

    Returns:
        What was removed and what is kept.

    Raises:
        ValueError: a bound or an environment value is invalid, or storage is off.
    """
    keep_s = retention_s() if retention is None else parse_duration(retention, what="retention")
    limit = max_bytes() if max_bytes_kept is None else max_bytes_kept
    if limit < 0:
        raise ValueError(f"max_bytes_kept={limit} must be >= 0")
    uri = storage or storage_uri()
    if uri is None:
        raise ValueError("RAYSESSION_STORAGE is off: there is no storage to clean up.")
    fs, root = filesystem(uri)
    now = time.time()
    # A job is its record (<id>.json) and its directory, if it has one; a segment goes
    # as a whole (its last append says how old it is).
    units: dict[str, list[str]] = {}
    for path in _children(fs, f"{root}/jobs"):
        units.setdefault(path.removesuffix(".json"), []).append(path)
    segments = [path for path in _children(fs, f"{root}/segments") if path.endswith(".seg")]
    units.update((path, [path]) for path in segments)
    stored: list[tuple[float, int, str]] = []  # (modified, bytes, unit)
    for unit, paths in units.items():
        files = {name: size for path in paths for name, size in _files(fs, path).items()}
        modified = max((_mtime(fs, name) for name in files), default=now)
        stored.append((modified, sum(files.values()), unit))
    stored.sort()
    removed = freed = segments_removed = 0
    total = sum(size for _, size, _ in stored)
    for modified, size, unit in stored:
        if now - modified <= keep_s and total <= limit:
            break
        for path in units[unit]:
            fs.rm(path, recursive=True)
        freed, total = freed + size, total - size
        if unit.endswith(".seg"):
            segments_removed += 1
        else:
            removed += 1
    sessions_removed = 0
    for path in _children(fs, f"{root}/sessions"):
        if now - _mtime(fs, path) > keep_s:
            fs.rm(path)
            sessions_removed += 1
    return CleanupReport(
        jobs_removed=removed,
        segments_removed=segments_removed,
        sessions_removed=sessions_removed,
        bytes_freed=freed,
        bytes_kept=total,
    )


def cleanup_now_and_then(uri: str) -> None:
    """Run :func:`cleanup_storage` on ``uri`` unless it ran there within the last hour
    (a marker file's time says when). Errors are logged: cleanup is housekeeping."""
    fs, root = filesystem(uri)
    marker = f"{root}/.last-cleanup"
    try:
        if fs.exists(marker) and time.time() - _mtime(fs, marker) < CLEANUP_EVERY_S:
            return
        write_bytes(uri, marker, str(time.time()).encode())
        report = cleanup_storage(storage=uri)
        logger.info("storage %s cleaned up: %s", uri, report)
    except Exception:
        logger.warning("storage %s: cleanup failed", uri, exc_info=True)


def _children(fs: Any, path: str) -> list[str]:
    try:
        return list(fs.ls(path, detail=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _files(fs: Any, path: str) -> dict[str, int]:
    try:
        return {
            name: int(meta.get("size") or 0) for name, meta in fs.find(path, detail=True).items()
        }
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _mtime(fs: Any, path: str) -> float:
    try:
        modified = fs.modified(path)
    except (FileNotFoundError, NotImplementedError, OSError):
        return time.time()
    return float(modified.timestamp())
