"""What a session actor writes so that it, and its results, outlive it: the journal
(:mod:`._journal`, for a restarted actor) and the stored records (:mod:`._storage`, for
any driver later). Every write runs in the background, off the actor's critical path,
except a job's acceptance, which the submit awaits."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

from ._journal import Head, Journal, Recovered
from ._lifecycle import SessionState
from ._log import get_logger, ids
from ._messages import SessionDetails
from ._session_records import JobRecord, SessionConfig, Timeline
from ._storage import cleanup_now_and_then, write_job, write_session
from .backends._store import filesystem, is_local

logger = get_logger(__name__)


class Durability:
    """One session actor's writes to its journal and its storage.

    Ordering: a job's end is written after its acceptance; the journal head has one
    writer, and the latest head wins. :meth:`settled` waits for every write in flight.
    """

    def __init__(self, config: SessionConfig) -> None:
        self._config = config
        self._journal = Journal(config.session_id)
        self._writes: set[asyncio.Future[Any]] = set()
        self._head: Callable[[], Head] | None = None
        self._head_writer: asyncio.Task[None] | None = None
        self._head_dirty = False
        self._closed = False
        self._ids = ids(config.session_id)
        uri = config.storage
        self._local = uri is not None and is_local(filesystem(uri)[0])

    def recover(self) -> Recovered:
        """The journal of the session's last incarnation (blocking; a restart reads it once)."""
        return self._journal.load()

    def accept(self, job: JobRecord) -> asyncio.Future[bool]:
        """Journal an accepted job; the returned future is done once the GCS has it."""
        job.journaled = asyncio.ensure_future(self._accept(job))
        self._track(job.journaled)
        return job.journaled

    def accept_later(self, job: JobRecord, delay_s: float) -> None:
        """Journal an accepted job if it is still running in ``delay_s`` seconds (a timer,
        not a task: most jobs end before, and then cost the journal nothing at all)."""
        asyncio.get_running_loop().call_later(delay_s, self._accept_if_running, job)

    def _accept_if_running(self, job: JobRecord) -> None:
        if not job.status.is_final and not self._closed and job.journaled is None:
            self.accept(job)

    async def _accept(self, job: JobRecord) -> bool:
        assert job.spec is not None
        await self._journal.accept(job.spec, job.sequence, job.created)
        return True

    def ended(self, job: JobRecord) -> None:
        """A job is final: store its record and replace its journal entry by it."""
        info = job.info(self._config.session_id)
        uri = self._config.storage
        if uri is not None:
            plan = None if job.delivery is None else job.delivery.join
            if self._local and plan is None:
                # A small local write (~11 µs) costs less here than a thread hand-off
                # costs the event loop; a join plan or a remote store goes to a thread.
                try:
                    write_job(uri, info, job.run.num_chunks, plan, tuple(job.run.chunk_places))
                except Exception:
                    job_ids = ids(self._config.session_id, job.job_id)
                    logger.warning("job %s: its record was not stored", job.job_id,
                                   exc_info=True, **job_ids)  # fmt: skip
            else:
                loop = asyncio.get_running_loop()
                self._track(
                    loop.run_in_executor(
                        None,
                        write_job,
                        uri,
                        info,
                        job.run.num_chunks,
                        plan,
                        tuple(job.run.chunk_places),
                    )
                )
        if job.journaled is not None:  # else it never had an entry: nothing to replace
            self.later(self._journal_end(job.journaled, info))

    def forget(self, jobs: list[JobRecord]) -> None:
        """Pruned jobs leave the journal (their stored records stay). Most granted jobs
        were never in it (see :meth:`accept`): no GCS call for them."""
        job_ids = [job.job_id for job in jobs if _journaled(job)]
        if job_ids:
            self.later(self._journal.forget(job_ids))

    def head_changed(self, head: Callable[[], Head]) -> None:
        """The session's state or clocks changed: rewrite the journal head soon."""
        self._head, self._head_dirty = head, True
        if not self._closed and (self._head_writer is None or self._head_writer.done()):
            self._head_writer = asyncio.get_running_loop().create_task(self._write_head())

    def later(self, write: Coroutine[Any, Any, Any]) -> None:
        """Run a write in the background; its failure is logged."""
        self._track(asyncio.ensure_future(write))

    async def store_session(
        self, details: Callable[[], SessionDetails], job_ids: list[str]
    ) -> None:
        """Store the session's details once its jobs' records are written, and clean the
        storage up now and then."""
        uri = self._config.storage
        if uri is None:
            return
        await self.settled(timeout=30.0)
        final = details()

        def write() -> None:
            write_session(uri, final, job_ids)
            cleanup_now_and_then(uri)

        try:
            await asyncio.get_running_loop().run_in_executor(None, write)
        except Exception:
            logger.warning(
                "session %s: its details were not stored", self._config.session_id, **self._ids
            )

    async def settled(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the writes in flight, except the caller's own."""
        current = asyncio.current_task()
        writes = {w for w in self._writes if w is not current}
        if writes:
            await asyncio.wait(writes, timeout=timeout)

    async def close(self) -> None:
        """The session ended: delete its journal, after the writes in flight."""
        self._closed = True
        await self.settled(timeout=30.0)
        try:
            await self._journal.drop()
        except Exception:
            logger.warning("session %s: journal not deleted", self._config.session_id, **self._ids)

    def _track(self, write: asyncio.Future[Any]) -> None:
        self._writes.add(write)
        write.add_done_callback(self._written)

    def _written(self, write: asyncio.Future[Any]) -> None:
        self._writes.discard(write)
        if not write.cancelled() and write.exception() is not None:
            logger.warning(
                "session %s: a record was not written: %s",
                self._config.session_id, write.exception(), **self._ids,
            )  # fmt: skip

    async def _journal_end(self, accepted: asyncio.Future[bool], info: Any) -> None:
        await asyncio.wait([accepted])  # its acceptance lands first
        if accepted.cancelled() or accepted.exception() is not None or not accepted.result():
            return  # never journalled: nothing to replace
        await self._journal.end(info)

    async def _write_head(self) -> None:
        while self._head_dirty and not self._closed and self._head is not None:
            self._head_dirty = False
            try:
                await self._journal.save_head(self._head())
            except Exception:
                logger.warning(
                    "session %s: journal head not written", self._config.session_id, **self._ids
                )


def _journaled(job: JobRecord) -> bool:
    """Whether the job has an entry in the journal (its acceptance was written)."""
    accepted = job.journaled
    if accepted is None or not accepted.done() or accepted.cancelled():
        return accepted is not None  # still being written: its entry may land
    return accepted.exception() is None and bool(accepted.result())


def recovered_session(
    recovered: Recovered, state: SessionState
) -> tuple[SessionState, int, Timeline | None, dict[str, JobRecord], list[JobRecord]]:
    """A restarted actor's state, sequence counter, timeline (``None``: none journalled),
    job records and queue (the jobs to run again, in FIFO order), from its journal."""
    timeline, sequence = None, 0
    if recovered.head is not None:
        state, sequence = recovered.head.state, recovered.head.sequence
        # The head is not rewritten for every job: the final records say the rest.
        runs = [info.metrics for info in recovered.final if info.metrics.running is not None]
        head = dataclasses.replace(
            recovered.head,
            last_job_started=max((m.running or 0.0 for m in runs), default=None),
            last_job_completed=max((m.finished or 0.0 for m in runs), default=None),
            execution_s=max(recovered.head.execution_s, sum(m.execution_s or 0.0 for m in runs)),
        )
        timeline = Timeline.recovered(head)
    jobs = {info.job_id: JobRecord.recovered(info) for info in recovered.final}
    queued = []
    for entry in recovered.accepted:
        job = JobRecord(entry.spec.job_id, entry.spec, entry.sequence, entry.created)
        job.rerun = True
        job.journaled = asyncio.get_running_loop().create_future()
        job.journaled.set_result(True)  # its entry is in the journal
        jobs[job.job_id] = job
        queued.append(job)
    sequence = max([sequence, *(job.sequence + 1 for job in jobs.values())])
    if state is SessionState.PENDING and queued:
        state = SessionState.INACTIVE  # it ran before: the next start activates it
    logger.warning(
        "session %s restarted: %d jobs run again, %d finished ones recovered",
        recovered.session_id, len(queued), len(recovered.final), **ids(recovered.session_id),
    )  # fmt: skip
    return state, sequence, timeline, jobs, queued
