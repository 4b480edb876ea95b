"""Where durable results live: the storage URI, its layout, and the writes a worker makes.

A job's results are written by the workers that computed them, once per chunk, next to
the job's record (written by its session actor, see :mod:`raysession._storage`)::

    <storage>/jobs/<job id>/chunk-<index>.pkl   a chunk's result (the whole job's for one chunk)
    <storage>/jobs/<job id>/record.json         the job's final record and how to join its chunks
    <storage>/sessions/<session id>.json        a session's final details and its job ids

``<storage>`` is ``RAYSESSION_STORAGE``: a local directory (default
``~/.raysession/storage``) or any URI fsspec understands (``s3://bucket/prefix`` with
s3fs installed, say). Every process that writes or reads must reach the same place:
on a multi-node cluster that means a shared filesystem or an object store.

Writes are atomic (a reader sees a whole file or none). Large ones, and any to a remote
store, are made off the critical path, from a background thread; a small one to a local
filesystem costs less written at once (see :func:`write_chunk`).
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import uuid
from functools import lru_cache
from typing import Any

import fsspec

from .._log import get_logger, ids

logger = get_logger(__name__)

STORAGE_ENV = "RAYSESSION_STORAGE"
DEFAULT_STORAGE = "~/.raysession/storage"
_OFF = {"off", "none", "0", "false", "no"}

# One background writer per process: writes leave in the order they were made.
_writer = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="raysession-store"
)


def storage_uri() -> str | None:
    """The storage this process writes to and reads from: ``RAYSESSION_STORAGE`` (a
    directory or a URI), ``~/.raysession/storage`` when unset, ``None`` when set to
    ``off``. A local path comes back absolute, so other processes on the node agree."""
    raw = os.environ.get(STORAGE_ENV, "").strip()
    if raw.lower() in _OFF:
        return None
    raw = raw or DEFAULT_STORAGE
    if "://" in raw:
        return raw
    return os.path.abspath(os.path.expanduser(raw))


@lru_cache(maxsize=16)
def filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``uri`` and the root path in it."""
    fs, root = fsspec.core.url_to_fs(uri)
    return fs, root.rstrip("/")


def is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def job_dir(uri: str, job_id: str) -> str:
    return f"{filesystem(uri)[1]}/jobs/{job_id}"


def chunk_path(uri: str, job_id: str, index: int) -> str:
    return f"{job_dir(uri, job_id)}/chunk-{index}.pkl"


def write_bytes(uri: str, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` atomically: readers see the old file, the whole new
    one, or none (a local write goes to a temporary name and is renamed; an object
    store's put is atomic already)."""
    fs, _ = filesystem(uri)
    if is_local(fs):
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        temporary = f"{path}.{uuid.uuid4().hex}.tmp"
        with open(temporary, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    else:
        fs.pipe_file(path, data)


def write_chunk(uri: str, job_id: str, index: int, value: Any) -> None:
    """Store a chunk's result: a small one on a local filesystem at once, in the caller's
    thread (about 50 µs: less than handing it to a thread costs the worker in CPU and
    GIL contention), anything else from the background writer. Errors are logged: the
    caller has the result, only its durable copy is missing."""
    if is_local(filesystem(uri)[0]) and data_bytes(value) <= INLINE_WRITE_BYTES:
        _write_chunk(uri, job_id, index, value)
    else:
        _writer.submit(_write_chunk, uri, job_id, index, value)


# Results up to this many bytes of array data are written in the caller's thread.
INLINE_WRITE_BYTES = 64 * 1024


def data_bytes(value: Any) -> int:
    """About how many bytes a chunk's results hold: the arrays of each PUB's data
    (``evs``, ``stds``, a ``BitArray``'s bits). Microseconds; a large guess for
    anything else."""
    try:
        pubs = list(value)
        total = 0
        for pub in pubs:
            for field in pub.data.values():
                array = getattr(field, "array", field)
                total += int(getattr(array, "nbytes", INLINE_WRITE_BYTES + 1))
        return total
    except Exception:
        return INLINE_WRITE_BYTES + 1


def _write_chunk(uri: str, job_id: str, index: int, value: Any) -> None:
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        write_bytes(uri, chunk_path(uri, job_id, index), data)
    except Exception:
        logger.warning("job %s: chunk %d's result was not stored in %s", job_id, index, uri,
                       exc_info=True, **ids(job_id=job_id))  # fmt: skip


def flush() -> None:
    """Wait for this process's background writes (tests; a worker's exit)."""
    _writer.submit(lambda: None).result()
