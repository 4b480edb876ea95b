"""This process's side of the pool: its handle, worker handles, what was sent where, leases.

A process that runs jobs (a session actor) leases workers from the cluster's pool
(:mod:`._pool`), sends chunks straight to them and gives them back. What it keeps
here is per process and per Ray connection: a new ``ray.init()`` starts it afresh.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import uuid
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from .._connect import NAMESPACE
from ..errors import BackendUnavailableError
from ._pool import get_pool
from ._pool_protocol import Lease, Shape

# Keys this process remembers as sent to each worker.
_TRACKED_KEYS = 4096
# Workers this process remembers sending to.
_TRACKED_WORKERS = 1024

_handle_of_pool: Any = None
# Numbers this process's lease requests: the pool keeps each client's requests in this order.
_order = itertools.count()
_connection: tuple[str, str] | None = None
_sent: collections.OrderedDict[str, collections.OrderedDict[str, None]] = collections.OrderedDict()
_handles: collections.OrderedDict[str, Any] = collections.OrderedDict()


# A worker that finished a whole job is kept this long for the same session's next job.
# Once _STICKY_S have passed since the pool granted it, it is kept only while the pool's
# answer to "does another client wait for this shape?" (asked at most every _STICKY_S,
# trusted for twice that) is no: other sessions wait about _STICKY_S at most.
_HOLD_S = 0.05
_STICKY_S = 0.25
# (shape, client) pairs whose last answer this process remembers.
_TRACKED_CONTENTION = 1024


@dataclass
class _Held:
    lease: Lease
    granted: float
    timer: asyncio.TimerHandle | None = None


# Workers held, by (session, backend): a Batch running jobs on several workers keeps
# each of them for its next jobs (the last held is taken first).
_held: dict[tuple[str, str], list[_Held]] = {}
_granted: dict[str, float] = {}


@dataclass
class _Contention:
    """The pool's last answer to whether a client other than this one waits for a shape."""

    others_wait: bool = True
    asked: float = -math.inf
    """Loop time of the question (not of the answer); -inf: never asked."""
    asking: bool = False
    answered: bool = False
    """The pool has answered at least once."""


_contention: collections.OrderedDict[tuple[Shape, str], _Contention] = collections.OrderedDict()


def hold(client: str, backend_id: str, lease: Lease, shape: Shape) -> None:
    """Keep a worker that just ran a whole job for a moment: the next job of the same
    session usually follows at once, and then needs no lease round trip. Past
    ``_STICKY_S`` after its grant it is kept only while no other client waits for a
    worker of its shape (a Batch's queued jobs keep their workers; a session that waits
    gets one within about ``_STICKY_S``)."""
    loop = asyncio.get_running_loop()
    now = loop.time()
    granted = _granted.get(lease.worker_id, now)
    if now - granted >= _STICKY_S and _others_may_wait(shape, client, now):
        give_back(lease)
        return
    key = (client, backend_id)
    held = _Held(lease, granted)
    held.timer = loop.call_later(_HOLD_S, _release_held, key, held)
    _held.setdefault(key, []).append(held)


def take_held(client: str, backend_id: str, prefer: str | None = None) -> Lease | None:
    """A worker held for ``client`` on ``backend_id`` (``prefer`` if it is one), if any;
    it is the caller's now."""
    entries = _held.get((client, backend_id))
    if not entries:
        return None
    index = next((i for i, h in enumerate(entries) if h.lease.worker_id == prefer), -1)
    held = entries.pop(index)
    if not entries:
        del _held[(client, backend_id)]
    if held.timer is not None:
        held.timer.cancel()
    return held.lease


def others_said_to_wait(shape: Shape, client: str) -> bool:
    """Whether the pool's last answer was that another client waits for a worker of
    ``shape`` (``False`` before its first answer); asks again if that answer is
    ``_STICKY_S`` old. Called on the event loop, by a session that acts on a yes within
    a quarter second (see ``raysession._session_lanes``)."""
    known = _ask_others_wait(shape, client, asyncio.get_running_loop().time())
    return known.answered and known.others_wait


def _others_may_wait(shape: Shape, client: str, now: float) -> bool:
    """Whether another client may wait for a worker of ``shape``: the pool's last answer
    while it is under ``2 * _STICKY_S`` old, else yes. Asks again (in the background)
    once the answer is ``_STICKY_S`` old."""
    known = _ask_others_wait(shape, client, now)
    return known.others_wait or now - known.asked >= 2 * _STICKY_S


def _ask_others_wait(shape: Shape, client: str, now: float) -> _Contention:
    """The last answer for ``(shape, client)``; a new question is on its way to the pool
    if that answer is ``_STICKY_S`` old or older."""
    key = (shape, client)
    known = _contention.get(key)
    if known is None:
        known = _contention[key] = _Contention()
        while len(_contention) > _TRACKED_CONTENTION:
            _contention.popitem(last=False)
    _contention.move_to_end(key)
    if not known.asking and now - known.asked >= _STICKY_S:
        known.asking, known.asked = True, now
        asyncio.get_running_loop().create_task(_ask(pool(), shape, client, known))
    return known


async def _ask(found: Any, shape: Shape, client: str, known: _Contention) -> None:
    try:
        known.others_wait = bool(await found.others_wait.remote(shape, client))
        known.answered = True
    except Exception:  # the pool exited or died: assume somebody waits
        known.others_wait = True
    finally:
        known.asking = False


def _release_held(key: tuple[str, str], held: _Held) -> None:
    entries = _held.get(key)
    if entries and held in entries:
        entries.remove(held)
        if not entries:
            del _held[key]
        give_back(held.lease)


def give_back(lease: Lease) -> None:
    """Release a leased worker to the pool (without waiting for the answer)."""
    _granted.pop(lease.worker_id, None)
    pool().release.remote(lease.worker_id)


def pool() -> Any:
    """The pool's handle, found (or created) once per Ray connection of this process."""
    global _handle_of_pool, _connection
    context = ray.get_runtime_context()
    connection = (context.get_node_id(), context.get_job_id())
    if connection != _connection:
        # A new ray.init(): handles and what was sent belong to the old cluster.
        reset_pool()
        _connection = connection
    if _handle_of_pool is None:
        _handle_of_pool = get_pool()
    return _handle_of_pool


def reset_pool() -> None:
    """Forget the pool's handle and everything known of its workers (it exited, or a new
    Ray connection began)."""
    global _handle_of_pool
    _handle_of_pool = None
    _sent.clear()
    _handles.clear()
    _granted.clear()
    _contention.clear()
    for entries in _held.values():
        for held in entries:
            if held.timer is not None:
                held.timer.cancel()
    _held.clear()


def to_ship(worker_id: str, keys: list[str], resend: set[str]) -> set[str]:
    """Of ``keys``, those this process has not sent to the worker yet (or must resend)."""
    sent = _sent.get(worker_id)
    if sent is None:
        sent = _sent[worker_id] = collections.OrderedDict()
        while len(_sent) > _TRACKED_WORKERS:
            _sent.popitem(last=False)
    ship = set()
    for key in keys:
        if key in sent and key not in resend:
            sent.move_to_end(key)
            continue
        ship.add(key)
        sent[key] = None
    while len(sent) > _TRACKED_KEYS:
        sent.popitem(last=False)
    return ship


def handle(worker_id: str) -> Any:
    """The worker's actor handle, looked up by name once per process."""
    handle = _handles.get(worker_id)
    if handle is None:
        try:
            handle = _handles[worker_id] = ray.get_actor(worker_id, namespace=NAMESPACE)
        except ValueError as exc:  # it died between the grant and this lookup
            raise RayActorError() from exc
        while len(_handles) > _TRACKED_WORKERS:
            _handles.popitem(last=False)
    return handle


def forget_worker(worker_id: str) -> None:
    """Forget a worker that died: what was sent to it and its handle."""
    _sent.pop(worker_id, None)
    _handles.pop(worker_id, None)
    _granted.pop(worker_id, None)


def forget_keys(worker_id: str, keys: tuple[str, ...]) -> None:
    """Forget that ``keys`` were sent to a worker (it answered that it lacks them)."""
    sent = _sent.get(worker_id)
    if sent is not None:
        for key in keys:
            sent.pop(key, None)


def _granted_now(lease: Lease, shape: Shape, client: str) -> None:
    """Note a grant's time; have the pool's answer on contention ready for when the
    worker's first ``_STICKY_S`` have passed (see :func:`hold`)."""
    now = asyncio.get_running_loop().time()
    _granted[lease.worker_id] = now
    _ask_others_wait(shape, client, now)


async def try_acquire(
    client: str, shape: Shape, backend_id: str, cap: int | None, prefer: str | None = None
) -> Lease | None:
    """A worker of ``shape`` for ``client`` without waiting: one it holds, else one the
    pool has idle now (``prefer`` if that one is); ``None`` if neither."""
    held = take_held(client, backend_id, prefer)
    if held is not None:
        return held
    for attempt in range(2):
        found = pool()
        try:
            lease: Lease | None = await found.try_lease.remote(
                client, shape, backend_id, cap, prefer
            )
        except RayActorError:
            reset_pool()  # the pool exited while idle: find (or create) it again
            if attempt:
                return None
            continue
        if lease is not None:
            _granted_now(lease, shape, client)
        return lease
    return None


async def acquire(client: str, shape: Shape, backend_id: str, cap: int | None) -> Lease:
    """A worker of ``shape`` for ``client``: one it holds, else a lease from the pool.

    Raises:
        BackendUnavailableError: the pool could not place a worker of the shape.
    """
    held = take_held(client, backend_id)
    if held is not None:
        return held
    request_id = uuid.uuid4().hex
    for attempt in range(3):
        found = pool()
        ref = found.lease.remote(client, shape, backend_id, cap, request_id, next(_order))
        try:
            lease: Lease = await ref
            _granted_now(lease, shape, client)
            return lease
        except asyncio.CancelledError:
            found.cancel_lease.remote(request_id)
            raise
        except RayTaskError as exc:
            if isinstance(exc.cause, BackendUnavailableError):
                raise exc.cause from None
            raise
        except RayActorError:
            # The pool exited (idle) or died between finding and using it: find it again,
            # once its name is free.
            reset_pool()
            if attempt == 2:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
