"""The courier: one actor per node that hands finished jobs' results to their submitters.

A job the session actor ran itself (it waited in the queue, or was split into chunks)
has its results where its workers put them, owned by the session actor. Its
submitter, when it submits the job, also asks its node's courier to deliver it (one
call, naming the session and the job): the courier asks the session where the results
are, fetches them, joins a split job's chunks and returns the result, which then belongs
to the submitter. It tells the session which jobs it fetched in its next call there, or
in one call for all of them a moment later. So
results never pass through the session actor's Python, and a result survives its
session.

A courier is a long-lived async actor (named ``courier-<node id>``, detached, no
CPU), so delivering costs no process start; Ray restarts it and retries its calls if
it dies. It exits once nothing is in flight and no session is live.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import ray
from qiskit.primitives import PrimitiveResult, PubResult
from ray.exceptions import ObjectLostError, OwnerDiedError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ._connect import NAMESPACE, actor_name, live_session_ids
from ._log import get_logger
from ._storage import stored_result
from .backends._partition import join
from .backends.base import Delivery

logger = get_logger(__name__)

# Seconds between a courier's checks whether it may exit.
_IDLE_CHECK_S = 1.0
# Seconds a courier waits to tell a session which jobs it fetched, unless a call to
# that session carries them sooner. A Batch's jobs are all asked for as they are
# submitted, so no later call carries them: at 0.05 s a 40-job W3b Batch cost its session
# 13 such calls, at 0.25 s 2. (The session keeps the results' refs, and a final session
# stays, that much longer.)
_FETCHED_DELAY_S = 0.25
# Session actor handles a courier keeps.
_TRACKED_SESSIONS = 1024

_couriers: dict[tuple[str, str], Any] = {}


class Courier:
    """Fetches finished jobs' results for the processes on its node (see the module)."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._loop: asyncio.Task[None] | None = None
        self._sessions: OrderedDict[str, Any] = OrderedDict()
        self._fetched = FetchedNotices()

    async def deliver(self, session_id: str, job_id: str) -> PrimitiveResult[PubResult]:
        """The job's result, fetched (and joined) from where its workers put it.

        Raises:
            RayActorError: the session actor is gone.
            The job's error, as the session actor classified it.
        """
        self._watch()
        session = self._session(session_id)
        self._in_flight += 1
        try:
            # The jobs delivered since the last call to this session ride along.
            delivery: Delivery = await session.result.remote(job_id, self._fetched.take(session_id))
            if delivery.error is not None:
                raise delivery.error
            value = await self._fetch(delivery, job_id)
        finally:
            self._in_flight -= 1
        self._note_fetched(session_id, job_id)
        result: PrimitiveResult[PubResult] = value
        return result

    async def _fetch(self, delivery: Delivery, job_id: str) -> Any:
        """The result from the refs, or from storage when the session no longer keeps the
        refs or their owner (the submitter of a granted job) is gone."""
        if delivery.refs:
            try:
                values = await asyncio.gather(*delivery.refs)
            except (OwnerDiedError, ObjectLostError):
                if delivery.storage is None:
                    raise
            else:
                plan = delivery.join
                return values[0] if plan is None else join(plan.shapes, plan.chunks, values)
        return await asyncio.get_running_loop().run_in_executor(
            None, stored_result, job_id, delivery.storage
        )

    async def start(self) -> None:
        """Begin watching for the moment the courier may exit (called once it is created)."""
        self._watch()

    def _session(self, session_id: str) -> Any:
        """The session's actor handle, looked up by name once."""
        handle = self._sessions.get(session_id)
        if handle is None:
            try:
                handle = ray.get_actor(actor_name("session", session_id), namespace=NAMESPACE)
            except ValueError as exc:  # it exited: the handle's error handling takes over
                raise RayActorError() from exc
            self._sessions[session_id] = handle
            while len(self._sessions) > _TRACKED_SESSIONS:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(session_id)
        return handle

    def _note_fetched(self, session_id: str, job_id: str) -> None:
        """Tell the session that the job was fetched: with its next ``result`` call from
        here, or after a moment on its own (one call for the jobs fetched meanwhile)."""
        if self._fetched.note(session_id, job_id):
            asyncio.get_running_loop().call_later(_FETCHED_DELAY_S, self._flush, session_id)

    def _flush(self, session_id: str) -> None:
        job_ids = self._fetched.flush(session_id)
        session = self._sessions.get(session_id)
        if job_ids and session is not None:
            session.fetched.remote(job_ids)

    def _watch(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self._exit_when_idle())

    async def _exit_when_idle(self) -> None:
        while True:
            await asyncio.sleep(_IDLE_CHECK_S)
            if self._in_flight == 0 and not self._fetched and not live_session_ids():
                logger.info("courier exits: no session is live")
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


class FetchedNotices:
    """The jobs a courier fetched, by session, until their session hears of them: with
    the courier's next ``result`` call there (:meth:`take`), or when the session's timer
    fires (:meth:`flush`). One timer per session at a time: a list taken along by a call
    leaves the timer set, and the next list waits for it. (A timer per new list cost a
    W3b Batch 0.36 ``fetched`` calls per job; one per session, 0.065.)"""

    def __init__(self) -> None:
        self._pending: dict[str, list[str]] = {}
        self._timed: set[str] = set()

    def note(self, session_id: str, job_id: str) -> bool:
        """Note a fetched job; True if the caller must set the session's timer now."""
        self._pending.setdefault(session_id, []).append(job_id)
        if session_id in self._timed:
            return False
        self._timed.add(session_id)
        return True

    def take(self, session_id: str) -> list[str]:
        """The session's noted jobs, to ride along a call there (its timer stays set)."""
        return self._pending.pop(session_id, [])

    def flush(self, session_id: str) -> list[str]:
        """The session's timer fired: its noted jobs, to send in one call."""
        self._timed.discard(session_id)
        return self._pending.pop(session_id, [])

    def __bool__(self) -> bool:
        return bool(self._pending)


def deliver(session_id: str, job_id: str) -> ray.ObjectRef[PrimitiveResult[PubResult]]:
    """A ref, owned by this process, of the result of a job the session actor runs: the
    node's courier answers it once the session has the job's results."""
    ref: ray.ObjectRef[PrimitiveResult[PubResult]] = courier().deliver.remote(session_id, job_id)
    return ref


def courier(*, refresh: bool = False) -> Any:
    """This node's courier, found (or created) once per Ray connection of this process.

    ``refresh``: look it up again (create it if it exited). A new session does, so that
    a courier process is up before the session's first queued job finishes.
    """
    context = ray.get_runtime_context()
    node_id = context.get_node_id()
    key = (node_id, context.get_job_id())
    found = _couriers.get(key)
    if found is None or refresh:
        found = _couriers[key] = _start(node_id)
        found.start.remote()
    return found


def forget_courier() -> None:
    """Forget this process's courier handles (one exited, and a new one must be found)."""
    _couriers.clear()


def _start(node_id: str) -> Any:
    actor_cls: Any = ray.remote(Courier)
    return actor_cls.options(
        name=actor_name("courier", node_id),
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        num_cpus=0,
        max_concurrency=10_000,
        # A crashed courier comes back and Ray retries the deliveries it held.
        max_restarts=-1,
        max_task_retries=-1,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote()
