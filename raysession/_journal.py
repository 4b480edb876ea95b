"""A session's journal in Ray's GCS key-value store: what a restarted session actor recovers.

The GCS outlives every actor and worker node (it lives with the head). A session actor
writes, in namespace ``raysession``:

* ``journal/<session id>/head``: its state, sequence counter and clock readings (UNIX
  times), rewritten as they change;
* ``journal/<session id>/job/<job id>``: each accepted job, written *before* the
  submitter hears the job was accepted (its spec, sequence and creation time), then
  replaced by the job's final record when it ends.

A restarted actor reads both back (:func:`load`): jobs accepted but not final run again,
in their FIFO order; final ones answer status queries as before. The journal is
deleted when the session ends. Writes go through the GCS client's asynchronous calls,
so the actor's event loop never blocks on them.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

from ray.experimental import internal_kv

from ._lifecycle import SessionState
from ._messages import JobInfo
from .backends.base import JobSpec

NAMESPACE = b"raysession"


@dataclass
class Head:
    """The session-wide part of the journal."""

    state: SessionState
    sequence: int
    started_at: float | None = None
    closed_at: float | None = None
    last_job_started: float | None = None
    last_job_completed: float | None = None
    execution_s: float = 0.0


@dataclass(frozen=True)
class Accepted:
    """A job accepted and not final when the journal was last written."""

    spec: JobSpec
    sequence: int
    created: float


@dataclass
class Recovered:
    """What a restarted session actor reads back."""

    session_id: str
    head: Head | None
    accepted: list[Accepted] = field(default_factory=list)
    """In sequence (FIFO) order."""
    final: list[JobInfo] = field(default_factory=list)
    """In sequence order."""


def _client() -> Any:
    return internal_kv.internal_kv_get_gcs_client()  # type: ignore[no-untyped-call]


class Journal:
    """One session's journal; every method is safe to call from the actor's event loop."""

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        self._prefix = f"journal/{session_id}/"

    def _key(self, *parts: str) -> bytes:
        return (self._prefix + "/".join(parts)).encode()

    async def accept(self, spec: JobSpec, sequence: int, created: float) -> None:
        """Record an accepted job; returns once the GCS has it."""
        data = pickle.dumps(Accepted(spec, sequence, created), protocol=pickle.HIGHEST_PROTOCOL)
        await _client().async_internal_kv_put(self._key("job", spec.job_id), data, True, NAMESPACE)

    async def end(self, info: JobInfo) -> None:
        """Replace a job's entry by its final record."""
        data = b"F" + info.model_dump_json().encode()
        await _client().async_internal_kv_put(self._key("job", info.job_id), data, True, NAMESPACE)

    async def save_head(self, head: Head) -> None:
        data = pickle.dumps(head, protocol=pickle.HIGHEST_PROTOCOL)
        await _client().async_internal_kv_put(self._key("head"), data, True, NAMESPACE)

    async def forget(self, job_ids: list[str]) -> None:
        """Drop pruned jobs' entries."""
        client = _client()
        for job_id in job_ids:
            await client.async_internal_kv_del(self._key("job", job_id), False, NAMESPACE)

    async def drop(self) -> None:
        """Delete the whole journal (the session ended)."""
        await _client().async_internal_kv_del(self._prefix.encode(), True, NAMESPACE)

    def load(self) -> Recovered:
        """Read the journal back (blocking: called once, as a restarted actor starts)."""
        client = _client()
        head_data = client.internal_kv_get(self._key("head"), NAMESPACE)
        keys = client.internal_kv_keys(self._key("job", ""), NAMESPACE)
        values: dict[bytes, bytes] = client.internal_kv_multi_get(keys, NAMESPACE) if keys else {}
        recovered = Recovered(
            self._session_id, None if head_data is None else pickle.loads(head_data)
        )
        for data in values.values():
            if data[:1] == b"F":
                recovered.final.append(JobInfo.model_validate_json(data[1:]))
            else:
                recovered.accepted.append(pickle.loads(data))
        recovered.accepted.sort(key=lambda entry: entry.sequence)
        recovered.final.sort(key=lambda info: info.metrics.sequence)
        return recovered
