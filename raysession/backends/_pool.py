"""The cluster's one Aer worker pool: shapes, demand-driven start, idle release, fair leases.

Aer workers are a resource of the Ray cluster, not of a driver. One detached
:class:`PoolActor` (named ``pool`` in the ``raysession`` namespace) is created on
first use by whichever process needs it and is shared by every backend, session
and driver. Backend code (running in a session actor) *leases* a worker for one
chunk, sends the chunk straight to it and releases it; the pool never sees
circuits or results.

Resource accounting. A worker is created with ``num_cpus=0`` in Ray's accounting
and pinned to a node the pool chose, where the pool's own count of the CPUs its
workers use leaves room for it. The pool never starts more workers on a node than
the node has CPUs, and Aer uses the worker's ``num_cpus`` threads; but an idle
worker (or a busy one) holds no CPU that a user's Ray task waits for: the user's
tasks are placed as if raysession were not there and share the cores with it.
GPUs are real Ray resources: a GPU worker holds its GPUs (Ray sets
``CUDA_VISIBLE_DEVICES``), through a placement group that shows the demand to
Ray's autoscaler. Demand the cluster cannot place is also published with
:func:`ray.autoscaler.sdk.request_resources`, so an autoscaling cluster adds nodes;
if none come within ``RAYSESSION_PLACEMENT_TIMEOUT_S`` the waiting leases fail
with an error naming the missing resources.

Knobs (environment of the process that creates the pool):
``RAYSESSION_WORKER_IDLE_S`` (60): a worker without work for this long is released.
``RAYSESSION_PLACEMENT_TIMEOUT_S`` (60): how long a lease waits for a shape no node can place.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import ActorUnschedulableError, RayActorError, RayError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from .._connect import NAMESPACE, actor_name, ensure_ray, live_session_ids
from .._log import get_logger
from .._metrics import worker_busy_fraction
from ..errors import BackendUnavailableError
from ._pool_protocol import (
    PLACEMENT_ENV,
    POOL_NAME,
    Lease,
    PoolConfig,
    PoolStatus,
    Shape,
    WorkerStatus,
)

logger = get_logger(__name__)

# A shape whose workers die this many times in a row while starting fails its leases.
_START_FAILURES = 3
# Seconds a lease waits for a busy worker before the pool starts another.
_START_DELAY_S = 0.1
# Seconds a worker may take to import Aer and answer, once placed.
_START_S = 180.0
# Seconds a status report waits for a worker's cache counts (it answers in its own thread).
_INFO_S = 5.0


@dataclass
class _Worker:
    worker_id: str
    shape: Shape
    node_id: str
    handle: Any
    pg: Any = None
    ready: bool = False
    client: str | None = None
    backend_id: str | None = None
    request_id: str | None = None
    idle_since: float = field(default_factory=time.monotonic)


@dataclass
class _Waiter:
    request_id: str
    client: str
    shape: Shape
    backend_id: str
    cap: int | None
    future: asyncio.Future[Lease]
    order: int = 0


class PoolActor:
    """Owns the cluster's Aer workers: starts them on demand, leases them fairly, releases them.

    Concurrency: an async actor (``max_concurrency`` 10,000); every method runs on one
    event loop, so the state needs no locks. A waiting :meth:`lease` is a parked
    coroutine. Ordering: a free worker of a shape goes to the waiting client (session)
    served least recently, a newcomer first, and FIFO within a client, so a session
    with one chunk waits about one chunk of another session's sweep, never the whole
    sweep. Called by: backend code in session actors (:meth:`lease`, :meth:`release`,
    :meth:`cancel_lease`) and by :func:`pool_status` / :func:`shutdown_pool`. It calls
    only its workers.

    Lifecycle: created on first use; exits when it has no worker, no waiting lease
    and no live session, so nothing of raysession stays on an idle cluster.
    """

    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        self._workers: dict[str, _Worker] = {}
        # shape -> client -> FIFO of waiters; see _next_waiter for the order of clients.
        self._waiting: dict[Shape, collections.OrderedDict[str, collections.deque[_Waiter]]] = {}
        # Shapes with demand that no node can place: since when, and how many workers short.
        self._unplaceable_since: dict[Shape, float] = {}
        self._short: dict[Shape, int] = {}
        self._start_failures: collections.Counter[Shape] = collections.Counter()
        self._grants: collections.Counter[str] = collections.Counter()
        # When each client was last granted a worker (grant sequence numbers).
        self._served: dict[str, int] = {}
        self._sequence = itertools.count()
        self._replaced = 0
        self._requested: list[dict[str, float]] = []
        self._delayed: dict[Shape, asyncio.TimerHandle] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._exiting = False

    # ----------------------------------------------------------------- protocol

    async def lease(
        self,
        client: str,
        shape: Shape,
        backend_id: str,
        cap: int | None,
        request_id: str,
        order: int = 0,
    ) -> Lease:
        """Wait for an idle worker of ``shape`` and grant it to ``client``.

        Args:
            client: Who asks (a session id); leases are fair across clients.
            shape: The worker's resources.
            backend_id: The backend the chunk belongs to, for ``cap``.
            cap: Most workers this backend may hold at once, or ``None``.
            request_id: Names the request for :meth:`cancel_lease`.
            order: The request's place among the client's requests. An async actor
                may run calls out of their submission order, so the client numbers them.

        Raises:
            BackendUnavailableError: no node could place the shape within the placement
                timeout, or its workers kept dying while they started.
        """
        self._ensure_loop()
        future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(request_id, client, shape, backend_id, cap, future, order)
        queues = self._waiting.setdefault(shape, collections.OrderedDict())
        queue = queues.setdefault(client, collections.deque())
        queue.append(waiter)
        if len(queue) > 1 and queue[-2].order > order:
            queues[client] = collections.deque(sorted(queue, key=lambda w: w.order))
        self._dispatch(shape)
        return await future

    async def try_lease(
        self,
        client: str,
        shape: Shape,
        backend_id: str,
        cap: int | None,
        prefer: str | None = None,
    ) -> Lease | None:
        """An idle worker of ``shape`` for ``client`` now (``prefer`` if it is idle), or
        ``None``: when none is idle, when others wait for the shape (they come first) or
        when ``cap`` is reached."""
        self._ensure_loop()
        if any(self._waiting.get(shape, {}).values()):
            return None
        if cap is not None and self._held_by(backend_id) >= cap:
            return None
        free = [
            w for w in self._workers.values() if w.shape == shape and w.ready and w.client is None
        ]
        idle = next((w for w in free if w.worker_id == prefer), free[0] if free else None)
        if idle is None:
            return None
        self._served[client] = next(self._sequence)
        idle.client, idle.backend_id, idle.request_id = client, backend_id, None
        self._grants[client] += 1
        self._publish_busy(shape)
        return Lease(idle.worker_id, self._served[client])

    async def others_wait(self, shape: Shape, client: str) -> bool:
        """Whether a client other than ``client`` waits for a worker of ``shape`` (one
        that holds a worker between jobs, a streak say, then gives it back)."""
        queues = self._waiting.get(shape)
        if not queues:
            return False
        return any(
            any(not w.future.done() for w in queue)
            for waiting, queue in queues.items()
            if waiting != client
        )

    async def release(self, worker_id: str) -> None:
        """Give a leased worker back; it serves the next waiter or goes idle."""
        worker = self._workers.get(worker_id)
        if worker is None:
            return
        worker.client, worker.backend_id, worker.request_id = None, None, None
        worker.idle_since = time.monotonic()
        self._dispatch(worker.shape)

    async def release_client(self, client: str) -> None:
        """Forget everything of ``client`` (a session actor that died and restarted):
        withdraw its waiting requests and release the workers it holds. A chunk it left
        running finishes on its worker before the next one starts there."""
        for queues in self._waiting.values():
            for waiter in queues.pop(client, ()):
                waiter.future.cancel()
        for worker in list(self._workers.values()):
            if worker.client == client:
                await self.release(worker.worker_id)

    async def cancel_lease(self, request_id: str) -> None:
        """Withdraw a waiting lease request; if it was granted already, release its worker."""
        for queues in self._waiting.values():
            for queue in queues.values():
                for waiter in queue:
                    if waiter.request_id == request_id:
                        queue.remove(waiter)
                        waiter.future.cancel()
                        return
        for worker in self._workers.values():
            if worker.request_id == request_id:
                await self.release(worker.worker_id)
                return

    async def warm(self, shape: Shape, count: int, timeout_s: float) -> int:
        """Start workers of ``shape`` until ``count`` run (as far as the cluster places them);
        wait up to ``timeout_s`` for them. Returns how many run."""
        self._ensure_loop()
        have = [w for w in self._workers.values() if w.shape == shape]
        for worker in have:
            worker.idle_since = time.monotonic()  # warmed: the idle clock starts now
        for _ in range(count - len(have)):
            node_id = self._node_for(shape)
            if node_id is None:
                break
            self._start_worker(shape, node_id)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            mine = [w for w in self._workers.values() if w.shape == shape]
            if all(w.ready for w in mine):
                break
            await asyncio.sleep(0.05)
        return sum(1 for w in self._workers.values() if w.shape == shape and w.ready)

    async def status(self) -> PoolStatus:
        """The workers (with their circuit caches), the waiting leases and the grants so far."""
        started = [w for w in self._workers.values() if w.ready]
        answers = await asyncio.gather(
            *(asyncio.wait_for(w.handle.cache_info.remote(), _INFO_S) for w in started),
            return_exceptions=True,
        )
        caches = {
            w.worker_id: a for w, a in zip(started, answers, strict=True) if isinstance(a, dict)
        }
        waiting: collections.Counter[str] = collections.Counter()
        for queues in self._waiting.values():
            for client, queue in queues.items():
                waiting[client] += len(queue)
        return PoolStatus(
            workers=[
                WorkerStatus(
                    worker_id=w.worker_id,
                    num_cpus=w.shape.num_cpus,
                    num_gpus=w.shape.num_gpus,
                    node_id=w.node_id,
                    state="starting" if not w.ready else ("busy" if w.client else "idle"),
                    client=w.client,
                    cached_circuits=caches.get(w.worker_id, {}).get("circuits"),
                    cache_bytes=caches.get(w.worker_id, {}).get("bytes"),
                )
                for w in self._workers.values()
            ],
            waiting=dict(waiting),
            grants=dict(self._grants),
            replaced=self._replaced,
            config={
                "idle_s": self._config.idle_s,
                "placement_timeout_s": self._config.placement_timeout_s,
            },
        )

    async def shutdown(self) -> None:
        """Stop every worker, fail waiting leases and exit."""
        self._fail_all(BackendUnavailableError("The raysession worker pool was shut down."))
        await self._exit()

    # ----------------------------------------------------------------- dispatch

    def _held_by(self, backend_id: str) -> int:
        return sum(1 for w in self._workers.values() if w.backend_id == backend_id)

    def _next_waiter(self, shape: Shape) -> _Waiter | None:
        """The next waiter of ``shape`` to serve: the waiting client served least recently
        (a newcomer first), FIFO within each client."""
        queues = self._waiting.get(shape)
        if not queues:
            return None
        for client in sorted(queues, key=lambda c: self._served.get(c, -1)):
            queue = queues[client]
            while queue and queue[0].future.done():
                queue.popleft()
            if not queue:
                del queues[client]
                continue
            head = queue[0]
            if head.cap is not None and self._held_by(head.backend_id) >= head.cap:
                continue
            return head
        return None

    def _dispatch(self, shape: Shape) -> None:
        """Grant idle workers to waiters, then start workers for the demand left."""
        while True:
            waiter = self._next_waiter(shape)
            if waiter is None:
                break
            idle = next(
                (
                    w
                    for w in self._workers.values()
                    if w.shape == shape and w.ready and w.client is None
                ),
                None,
            )
            if idle is None:
                break
            queues = self._waiting[shape]
            queues[waiter.client].popleft()
            self._served[waiter.client] = next(self._sequence)
            idle.client, idle.backend_id = waiter.client, waiter.backend_id
            idle.request_id = waiter.request_id
            self._grants[waiter.client] += 1
            waiter.future.set_result(Lease(idle.worker_id, self._served[waiter.client]))
        self._start_for(shape)
        self._publish_busy(shape)

    def _publish_busy(self, shape: Shape) -> None:
        """Record the busy fraction of ``shape``'s workers (a Ray metric)."""
        mine = [w for w in self._workers.values() if w.shape == shape]
        busy = sum(1 for w in mine if w.client is not None)
        worker_busy_fraction(f"cpu={shape.num_cpus:g},gpu={shape.num_gpus:g}", busy, len(mine))

    def _demand(self, shape: Shape) -> int:
        """Waiting leases of ``shape`` that a new worker could serve (within their caps)."""
        queues = self._waiting.get(shape)
        if not queues:
            return 0
        waiting: collections.Counter[str] = collections.Counter()
        caps: dict[str, int | None] = {}
        for queue in queues.values():
            for waiter in queue:
                if not waiter.future.done():
                    waiting[waiter.backend_id] += 1
                    caps[waiter.backend_id] = waiter.cap
        total = 0
        for backend_id, count in waiting.items():
            cap = caps[backend_id]
            total += count if cap is None else min(count, max(0, cap - self._held_by(backend_id)))
        return total

    def _start_for(self, shape: Shape) -> None:
        """Start workers for the demand of ``shape`` that no starting worker will serve.

        With workers of the shape running, a start waits :data:`_START_DELAY_S`: a lease
        that a busy worker serves within that time costs no new process.
        """
        if not self._demand(shape):
            self._unplaceable_since.pop(shape, None)
            self._short.pop(shape, None)
            self._publish_demand()
            return
        running = any(w.shape == shape and w.ready for w in self._workers.values())
        if running and shape not in self._delayed:
            self._delayed[shape] = asyncio.get_running_loop().call_later(
                _START_DELAY_S, self._start_now, shape
            )
        elif not running:
            self._start_now(shape)

    def _start_now(self, shape: Shape) -> None:
        self._delayed.pop(shape, None)
        starting = sum(1 for w in self._workers.values() if w.shape == shape and not w.ready)
        short = max(0, self._demand(shape) - starting)
        while short:
            node_id = self._node_for(shape)
            if node_id is None and self._release_idle_for(shape):
                node_id = self._node_for(shape)
            if node_id is None:
                break
            self._start_worker(shape, node_id)
            short -= 1
        if short:
            self._short[shape] = short
        else:
            self._short.pop(shape, None)
        if short and not any(w.shape == shape for w in self._workers.values()):
            if self._fits_some_node(shape):
                # Workers of other shapes fill the nodes; they free up, nothing to time out.
                self._unplaceable_since.pop(shape, None)
            else:
                # No node is big enough: the leases wait for new nodes, boundedly.
                self._unplaceable_since.setdefault(shape, time.monotonic())
        else:
            self._unplaceable_since.pop(shape, None)
        self._publish_demand()

    def _fits_some_node(self, shape: Shape) -> bool:
        """True if an alive node's total resources could hold a worker of ``shape``."""
        return any(
            node.get("Resources", {}).get("CPU", 0.0) + 1e-9 >= shape.num_cpus
            and node.get("Resources", {}).get("GPU", 0.0) + 1e-9 >= shape.num_gpus
            for node in _nodes()
            if node.get("Alive")
        )

    def _release_idle_for(self, shape: Shape) -> bool:
        """Release idle workers of other shapes on a node big enough for ``shape``, until it
        fits there; returns whether it now fits somewhere."""
        for node in _nodes():
            if not node.get("Alive"):
                continue
            node_id, total = node["NodeID"], node.get("Resources", {})
            if total.get("CPU", 0.0) + 1e-9 < shape.num_cpus:
                continue
            if total.get("GPU", 0.0) + 1e-9 < shape.num_gpus:
                continue
            idle = [
                w
                for w in self._workers.values()
                if w.node_id == node_id and w.shape != shape and w.ready and w.client is None
            ]
            while idle and self._node_for(shape) is None:
                victim = idle.pop()
                logger.info("pool releases idle worker %s to make room", victim.worker_id)
                self._forget(victim)
                ray.kill(victim.handle, no_restart=True)
            if self._node_for(shape) is not None:
                return True
        return False

    def _node_for(self, shape: Shape) -> str | None:
        """An alive node where the pool's own count leaves room for ``shape``: the one with
        the fewest pool workers (so a small pool spreads over nodes), then the most free CPUs."""
        used: dict[str, float] = collections.defaultdict(float)
        used_gpu: dict[str, float] = collections.defaultdict(float)
        count: collections.Counter[str] = collections.Counter()
        for worker in self._workers.values():
            used[worker.node_id] += worker.shape.num_cpus
            used_gpu[worker.node_id] += worker.shape.num_gpus
            count[worker.node_id] += 1
        best: tuple[int, float] | None = None
        best_id = None
        for node in _nodes():
            if not node.get("Alive"):
                continue
            total = node.get("Resources", {})
            node_id = node["NodeID"]
            free_cpu = total.get("CPU", 0.0) - used[node_id]
            free_gpu = total.get("GPU", 0.0) - used_gpu[node_id]
            if free_cpu + 1e-9 >= shape.num_cpus and free_gpu + 1e-9 >= shape.num_gpus:
                rank = (count[node_id], -free_cpu)
                if best is None or rank < best:
                    best, best_id = rank, node_id
        return best_id

    def _start_worker(self, shape: Shape, node_id: str) -> None:
        from ._aer_worker import AerWorker  # the pool itself never imports Aer
        from ._lanes import LANE_THREADS

        worker_id = actor_name("aer", uuid.uuid4().hex[:12])
        options: dict[str, Any] = {
            "name": worker_id,
            "namespace": NAMESPACE,
            "num_cpus": 0,
            "max_restarts": 0,
            "max_task_retries": 0,
        }
        pg = None
        if shape.num_gpus:
            # GPUs are held for real, through a placement group the autoscaler sees.
            pg = placement_group([{"GPU": shape.num_gpus}], strategy="STRICT_PACK")
            options["num_gpus"] = shape.num_gpus
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(pg)
        else:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
        actor_cls: Any = ray.remote(
            concurrency_groups={
                "watch": 1,
                "info": 1,
                "grant": 1,
                "follow": 4,
                "streak": 4,
                "lane": LANE_THREADS,
            }
        )(  # type: ignore[call-overload]
            AerWorker
        )
        handle = actor_cls.options(**options).remote(worker_id, shape.num_cpus)
        worker = _Worker(worker_id, shape, node_id, handle, pg=pg)
        self._workers[worker_id] = worker
        logger.info("pool starts worker %s %s on node %s", worker_id, shape, node_id[:8])
        asyncio.get_running_loop().create_task(self._supervise(worker))

    async def _supervise(self, worker: _Worker) -> None:
        """Wait for the worker to start, then for its death; replace it on demand."""
        cfg = self._config
        try:
            if worker.pg is not None:
                ready, _ = await asyncio.wait(
                    [asyncio.ensure_future(worker.pg.ready())], timeout=cfg.placement_timeout_s
                )
                if not ready:
                    raise TimeoutError
            await asyncio.wait_for(
                asyncio.ensure_future(worker.handle.worker_id.remote()), _START_S
            )
        except (TimeoutError, RayError) as exc:
            self._forget(worker)
            ray.kill(worker.handle, no_restart=True)
            alive = any(w.shape == worker.shape and w.ready for w in self._workers.values())
            if isinstance(exc, TimeoutError) and worker.pg is not None:
                if not alive:
                    self._fail_shape(worker.shape, self._unplaceable_error(worker.shape))
            elif isinstance(exc, ActorUnschedulableError):
                # Its node died and Ray's node table does not say so yet: avoid the node.
                _shun(worker.node_id)
            else:
                self._start_failures[worker.shape] += 1
                if self._start_failures[worker.shape] >= _START_FAILURES:
                    self._fail_shape(
                        worker.shape,
                        BackendUnavailableError(
                            f"Aer workers of shape {worker.shape.resources()} died "
                            f"{_START_FAILURES} times while starting ({exc!r})."
                        ),
                    )
                    self._start_failures[worker.shape] = 0
            self._dispatch(worker.shape)
            return
        self._start_failures[worker.shape] = 0
        worker.ready, worker.idle_since = True, time.monotonic()
        self._dispatch(worker.shape)
        try:
            await worker.handle.watch.remote()
        except (RayActorError, RayError):
            pass
        if self._workers.get(worker.worker_id) is worker:
            logger.info("pool worker %s died; replacing it on demand", worker.worker_id)
            self._replaced += 1
            self._forget(worker)
            self._dispatch(worker.shape)

    def _forget(self, worker: _Worker) -> None:
        self._workers.pop(worker.worker_id, None)
        if worker.pg is not None:
            remove_placement_group(worker.pg)

    def _fail_shape(self, shape: Shape, error: BackendUnavailableError) -> None:
        for queue in self._waiting.pop(shape, {}).values():
            for waiter in queue:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
        self._unplaceable_since.pop(shape, None)
        self._short.pop(shape, None)

    def _fail_all(self, error: BackendUnavailableError) -> None:
        for shape in list(self._waiting):
            self._fail_shape(shape, error)

    def _unplaceable_error(self, shape: Shape) -> BackendUnavailableError:
        nodes = [n.get("Resources", {}) for n in _nodes() if n.get("Alive")]
        largest = {
            "CPU": max((r.get("CPU", 0.0) for r in nodes), default=0.0),
            "GPU": max((r.get("GPU", 0.0) for r in nodes), default=0.0),
        }
        return BackendUnavailableError(
            f"No node could place an Aer worker needing {shape.resources()} within "
            f"{self._config.placement_timeout_s:g} s ({PLACEMENT_ENV}); the largest node has "
            f"{largest['CPU']:g} CPUs and {largest['GPU']:g} GPUs. Lower num_cpus_per_worker "
            "/ num_gpus_per_worker, or add nodes that have them."
        )

    def _publish_demand(self) -> None:
        """Tell Ray's autoscaler (if any) the workers the pool would run if it could place
        them: its running workers plus the shortfall. Cleared when nothing is short."""
        bundles: list[dict[str, float]] = []
        if self._short:
            bundles = [w.shape.resources() for w in self._workers.values()]
            for shape, short in self._short.items():
                bundles += [shape.resources()] * short
        if bundles != self._requested:
            self._requested = bundles
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=bundles)

    # ----------------------------------------------------------------- housekeeping

    def _ensure_loop(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(self._housekeep())

    async def _housekeep(self) -> None:
        """Release idle workers, time out unplaceable shapes, free leases of dead
        sessions, and exit when nothing is left to do."""
        tick = min(1.0, self._config.idle_s / 4, self._config.placement_timeout_s / 4)
        while not self._exiting:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for worker in list(self._workers.values()):
                if worker.ready and worker.client is None:
                    if now - worker.idle_since >= self._config.idle_s:
                        logger.info("pool releases idle worker %s", worker.worker_id)
                        self._forget(worker)
                        ray.kill(worker.handle, no_restart=True)
            for shape in list(self._short):
                if self._node_for(shape) is not None:  # a node joined or a worker went
                    self._start_now(shape)
            for shape, since in list(self._unplaceable_since.items()):
                if now - since >= self._config.placement_timeout_s:
                    self._fail_shape(shape, self._unplaceable_error(shape))
                    self._publish_demand()
            busy = [w for w in self._workers.values() if w.client is not None]
            if busy or not self._workers:
                sessions = set(live_session_ids())
                for worker in busy:
                    if worker.client not in sessions:
                        # The session died holding the lease: the worker is free again.
                        await self.release(worker.worker_id)
                for client in [c for c in self._grants if c not in sessions]:
                    del self._grants[client]
                    self._served.pop(client, None)
                if not self._workers and not any(self._demand(s) for s in self._waiting):
                    if not sessions:
                        await self._exit()

    async def _exit(self) -> None:
        self._exiting = True
        for worker in list(self._workers.values()):
            self._forget(worker)
            ray.kill(worker.handle, no_restart=True)
        if self._requested:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=[])
        logger.info("pool exits")
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


_NODES_TTL_S = 1.0
_SHUN_S = 30.0
_nodes_cache: tuple[float, list[dict[str, Any]]] = (-_NODES_TTL_S, [])
_shunned: dict[str, float] = {}


def _nodes() -> list[dict[str, Any]]:
    """Ray's alive nodes, read at most once a second (a GCS round trip), less the nodes
    where a worker could not be scheduled lately."""
    global _nodes_cache
    now = time.monotonic()
    if now - _nodes_cache[0] >= _NODES_TTL_S:
        _nodes_cache = (now, ray.nodes())  # type: ignore[no-untyped-call]
    for node_id, until in list(_shunned.items()):
        if until <= now:
            del _shunned[node_id]
    return [n for n in _nodes_cache[1] if n.get("Alive") and n["NodeID"] not in _shunned]


def _shun(node_id: str) -> None:
    global _nodes_cache
    _shunned[node_id] = time.monotonic() + _SHUN_S
    _nodes_cache = (-_NODES_TTL_S, [])


def pool_actor_options() -> dict[str, Any]:
    """Ray options of the pool: named, detached, CPU-free, found or created by any process."""
    return {
        "name": POOL_NAME,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "get_if_exists": True,
        "num_cpus": 0,
        # On the head node, which lives as long as the cluster: the workers die with the pool.
        "resources": {"node:__internal_head__": 0.001},
        "max_restarts": 0,
        "max_concurrency": 10_000,
    }


def get_pool() -> Any:
    """The cluster's pool actor, created here if no process has created it yet."""
    ensure_ray()
    actor_cls: Any = ray.remote(PoolActor)
    return actor_cls.options(**pool_actor_options()).remote(PoolConfig.from_env())


def pool_status() -> PoolStatus:
    """The cluster's Aer workers (by shape, busy or idle, with their circuit caches) and
    the leases waiting for them (see :class:`PoolStatus`).

    Starts nothing: with no pool running, the status is empty and ``running`` is False.
    """
    ensure_ray()
    try:
        pool: Any = ray.get_actor(POOL_NAME, namespace=NAMESPACE)
        found: PoolStatus = ray.get(pool.status.remote())
    except (ValueError, RayActorError):
        found = PoolStatus(workers=[], waiting={}, grants={}, replaced=0, config={}, running=False)
    return found


def shutdown_pool() -> None:
    """Stop the cluster's pool and its workers now (they start again on the next job)."""
    ensure_ray()
    try:
        pool: Any = ray.get_actor(POOL_NAME, namespace=NAMESPACE)
        ray.get(pool.shutdown.remote())
    except (ValueError, RayActorError):
        pass
