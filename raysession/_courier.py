"""The courier: one actor per node that hands finished jobs' results to their submitters.

A job the session actor ran itself (it waited in the queue, or was split into chunks)
has its results where its workers put them, owned by the session actor. Its
submitter, when it submits the job, also asks its node's courier to deliver it: the
courier waits for the session's answer (where the results are), fetches them, joins a
split job's chunks and returns the result, which then belongs to the submitter. So
results never pass through the session actor's Python, and a result survives its
session.

A courier is a long-lived async actor (named ``courier-<node id>``, detached, no
CPU), so delivering costs no process start; Ray restarts it and retries its calls if
it dies. It exits once nothing is in flight and no session is live.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from qiskit.primitives import PrimitiveResult, PubResult
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ._connect import NAMESPACE, actor_name, live_session_ids
from .backends._partition import join
from .backends.base import Delivery

logger = logging.getLogger(__name__)

# Seconds between a courier's checks whether it may exit.
_IDLE_CHECK_S = 1.0

_couriers: dict[tuple[str, str], Any] = {}


class Courier:
    """Fetches finished jobs' results for the processes on its node (see the module)."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._loop: asyncio.Task[None] | None = None

    async def deliver(
        self, delivery: Delivery, session: Any, job_id: str
    ) -> PrimitiveResult[PubResult]:
        """The job's result, fetched (and joined) from where its workers put it.

        Raises:
            The job's error (``delivery.error``), as the session actor classified it.
        """
        self._watch()
        if delivery.error is not None:
            raise delivery.error
        self._in_flight += 1
        try:
            values = await asyncio.gather(*delivery.refs)
        finally:
            self._in_flight -= 1
        plan = delivery.join
        value = values[0] if plan is None else join(plan.shapes, plan.chunks, values, plan.metadata)
        session.fetched.remote(job_id)
        result: PrimitiveResult[PubResult] = value
        return result

    async def start(self) -> None:
        """Begin watching for the moment the courier may exit (called once it is created)."""
        self._watch()

    def _watch(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop().create_task(self._exit_when_idle())

    async def _exit_when_idle(self) -> None:
        while True:
            await asyncio.sleep(_IDLE_CHECK_S)
            if self._in_flight == 0 and not live_session_ids():
                logger.info("courier exits: no session is live")
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


def deliver(session: Any, job_id: str) -> ray.ObjectRef[PrimitiveResult[PubResult]]:
    """A ref, owned by this process, of the result of a job the session actor ran: the
    node's courier answers it once the session has the job's results."""
    ref: ray.ObjectRef[PrimitiveResult[PubResult]] = courier().deliver.remote(
        session.result.remote(job_id), session, job_id
    )
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
