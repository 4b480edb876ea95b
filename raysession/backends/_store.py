"""Where durable results live: the storage URI, its layout, and the writes a worker makes.

A job's results are written by the workers that computed them, once per chunk, next to
the job's record (written by its session actor, see :mod:`raysession._storage`)::

    <storage>/segments/<name>.seg               small chunk results, appended one after another
    <storage>/jobs/<job id>.json                the job's final record: where its chunks are
    <storage>/jobs/<job id>/chunk-<index>.pkl   a large chunk result, or one in a remote store
    <storage>/jobs/<job id>/join.pkl            how to join a split job's chunks
    <storage>/sessions/<session id>.json        a session's final details and its job ids

A small result on a local filesystem is appended to its worker's segment file (one
``write``, a few µs, where a file of its own costs a directory, a file and a rename,
about 40 µs: issue 10's 3% on a tiny job); its *place* (segment, offset, length) goes
back to the session with the chunk's completion and into the job's record. A worker
opens a new segment each hour and after 256 MiB, so cleanup removes whole segments by
age; a segment removed while its worker still appends is never created again under
the same name (a record can never point at other bytes).

``<storage>`` is ``RAYSESSION_STORAGE``: a local directory (default
``~/.raysession/storage``) or any URI fsspec understands (``s3://bucket/prefix`` with
s3fs installed, say). Every process that writes or reads must reach the same place:
on a multi-node cluster that means a shared filesystem or an object store.

A reader never takes a partial write for a whole one: chunk files and session details
are written to a temporary name and renamed (an object store's put is atomic already); a
place is recorded only once its bytes are in the segment; a job's record is written in
place (see :func:`write_new`), and a record that does not parse reads as not there yet.
Large writes, and any to a remote store, are made off the critical path, from a
background thread; a small one to a local filesystem costs less made at once (see
:func:`write_chunk`).
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import socket
import threading
import time
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


def record_path(uri: str, job_id: str) -> str:
    return f"{filesystem(uri)[1]}/jobs/{job_id}.json"


def chunk_path(uri: str, job_id: str, index: int) -> str:
    return f"{job_dir(uri, job_id)}/chunk-{index}.pkl"


def write_bytes(uri: str, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` atomically: readers see the old file, the whole new
    one, or none (a local write goes to a temporary name and is renamed; an object
    store's put is atomic already)."""
    fs, _ = filesystem(uri)
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    directory = os.path.dirname(path)
    if directory not in _made:
        os.makedirs(directory, exist_ok=True)
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        file = open(temporary, "wb")
    except FileNotFoundError:  # the directory was removed since
        os.makedirs(directory, exist_ok=True)
        file = open(temporary, "wb")
    with file:
        file.write(data)
    os.replace(temporary, path)
    if len(_made) < 64:  # directories that are written again and again (jobs/, sessions/)
        _made.add(directory)


_made: set[str] = set()


def write_new(uri: str, path: str, data: bytes) -> None:
    """Write a file that is written once (a job's record): on a local filesystem in
    place, without the temporary file and rename of :func:`write_bytes` (8 µs instead
    of 21 here; the rename is most of a record's cost to its session actor). A reader
    can meet it half written for microseconds: it must treat a file it cannot parse as
    not there yet (see :func:`raysession._storage.read_job`). A file already there is
    replaced atomically."""
    if not is_local(filesystem(uri)[0]) or os.path.dirname(path) not in _made:
        write_bytes(uri, path, data)
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except (FileExistsError, FileNotFoundError):
        write_bytes(uri, path, data)
        return
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_chunk(uri: str, job_id: str, index: int, value: Any) -> str:
    """Store a chunk's result and return its place: a small one on a local filesystem
    is appended to this process's segment at once, in the caller's thread (about 15 µs
    with the pickle); anything else is written to its chunk file by the background
    writer, and its place is ``""`` (the chunk file). Errors are logged, and give
    ``""``: the caller has the result, only its durable copy is missing."""
    if is_local(filesystem(uri)[0]) and data_bytes(value) <= INLINE_WRITE_BYTES:
        try:
            return _segments.append(uri, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception:
            logger.warning("job %s: chunk %d's result was not stored in %s", job_id, index, uri,
                           exc_info=True, **ids(job_id=job_id))  # fmt: skip
            return ""
    _writer.submit(_write_chunk, uri, job_id, index, value)
    return ""


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


def segment_path(uri: str, name: str) -> str:
    return f"{filesystem(uri)[1]}/segments/{name}"


def read_place(uri: str, place: str) -> bytes:
    """The bytes stored at ``place`` (see :func:`write_chunk`).

    Raises:
        FileNotFoundError: its segment was removed (cleanup).
    """
    name, offset, length = place.rsplit(":", 2)
    start = int(offset)
    data = filesystem(uri)[0].cat_file(
        segment_path(uri, name), start=start, end=start + int(length)
    )
    if len(data) != int(length):
        raise FileNotFoundError(f"{segment_path(uri, name)} ends before {place}")
    return bytes(data)


# A process's segment is replaced by a new one after this many bytes or seconds.
SEGMENT_MAX_BYTES = 256 * 2**20
SEGMENT_SPAN_S = 3600.0


class _Segments:
    """This process's append-only segment in each local storage it writes to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (uri, pid): (name, opened, size); the pid, so a forked child opens its own.
        self._open: dict[tuple[str, int], tuple[str, float, int]] = {}

    def append(self, uri: str, data: bytes) -> str:
        """Append ``data`` to this process's segment; returns its place,
        ``"<segment>:<offset>:<length>"``."""
        with self._lock:
            key = (uri, os.getpid())
            name, opened, size = self._open.get(key, ("", 0.0, 0))
            now = time.time()
            if not name or now - opened > SEGMENT_SPAN_S or size >= SEGMENT_MAX_BYTES:
                name, opened, size = self._new_name(now), now, 0
            try:
                # Never O_CREAT an existing name: a segment cleanup removed stays removed.
                flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_EXCL if not size else 0)
                fd = os.open(segment_path(uri, name), flags, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(segment_path(uri, name)), exist_ok=True)
                name, opened, size = self._new_name(now), now, 0
                fd = os.open(segment_path(uri, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                offset = os.fstat(fd).st_size
                _write_all(fd, data)
            finally:
                os.close(fd)
            self._open[key] = (name, opened, offset + len(data))
            return f"{name}:{offset}:{len(data)}"

    @staticmethod
    def _new_name(now: float) -> str:
        host = socket.gethostname().replace(":", "_").replace("/", "_")
        return f"{int(now)}-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}.seg"


_segments = _Segments()


def flush() -> None:
    """Wait for this process's background writes (tests; a worker's exit)."""
    _writer.submit(lambda: None).result()
