"""Operating the sessions of the connected cluster: who opened them, listing, finding jobs,
closing. Reads and acts through the session actors' own methods, with every wait bounded.

The handles' :mod:`.session` and the service's :mod:`.ibm.service` list through here, and
so does the ``raysession`` command (:mod:`.cli`). Nothing here starts Ray or a worker.
"""

from __future__ import annotations

import getpass
import socket
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from ._connect import NAMESPACE, actor_name, ensure_ray, live_session_ids
from ._lifecycle import SessionState
from ._log import get_logger
from ._messages import JobInfo, SessionDetails, SessionOwner
from .errors import SessionNotFoundError

logger = get_logger(__name__)

WAIT_S = 10.0
"""Seconds a listing or a call on one session waits for session actors to answer. An
actor that does not answer in time (it is exiting, or its node is gone) is left out."""


def this_owner() -> SessionOwner:
    """This process as the opener of a session: its OS user, host and Ray job."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no password entry (some containers)
        user = "unknown"
    return SessionOwner(
        user=user, host=socket.gethostname(), ray_job_id=ray.get_runtime_context().get_job_id()
    )


def this_user() -> str:
    """The OS user whose sessions are "own" to this process."""
    return this_owner().user


def session_actor(session_id: str) -> Any:
    """The live actor of a session.

    Raises:
        SessionNotFoundError: no live session has that id.
    """
    ensure_ray()
    try:
        return ray.get_actor(actor_name("session", session_id), namespace=NAMESPACE)
    except ValueError as exc:
        raise _not_found(session_id) from exc


def _not_found(session_id: str) -> SessionNotFoundError:
    return SessionNotFoundError(
        f"No live session has id {session_id}; it may have closed. "
        "Use raysession.list_sessions() (or `raysession list --all-users`) to see the live ones.",
        session_id=session_id,
    )


def _gather(calls: list[tuple[Any, ray.ObjectRef[Any]]], wait_s: float) -> list[tuple[Any, Any]]:
    """``(key, answer)`` of the calls answered within ``wait_s``; calls that failed (the actor
    died or exited meanwhile) or did not answer in time are left out."""
    if not calls:
        return []
    refs = [ref for _, ref in calls]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=wait_s)
    if len(ready) < len(refs):
        logger.warning(
            "%d session actors did not answer within %s s; left out", len(refs) - len(ready), wait_s
        )
    answered = set(ready)
    found = []
    for key, ref in calls:
        if ref not in answered:
            continue
        try:
            found.append((key, ray.get(ref)))
        except RayError:  # it ended between being found and answering
            continue
    return found


def _live_actors() -> list[Any]:
    ensure_ray()
    actors = []
    for session_id in live_session_ids():
        try:
            actors.append(session_actor(session_id))
        except SessionNotFoundError:  # it exited since the names were read
            continue
    return actors


def live_sessions() -> list[tuple[Any, SessionDetails]]:
    """``(actor, details)`` of every live session on the cluster, oldest first."""
    answers = _gather([(a, a.details.remote()) for a in _live_actors()], WAIT_S)
    answers.sort(key=lambda item: (item[1].created_at or 0.0, item[1].id))
    return answers


def list_sessions(
    state: SessionState | str | None = None, *, all_users: bool = True
) -> list[SessionDetails]:
    """Every session (and batch) on the connected Ray cluster, oldest first.

    Each record has the session's id, mode, backend, state, created and started times, how
    many jobs are queued, running and finished, and its owner (user, host, Ray job). A
    session whose actor exits while it is listed is left out, and so is one that does not
    answer within :data:`WAIT_S` seconds: listing never hangs.

    Args:
        state: Only sessions in this state (a :class:`~raysession.SessionState` or its
            value, such as ``"active"``).
        all_users: List the sessions of every user (the default), or only those opened by
            this process's OS user (:func:`getpass.getuser`). A courtesy filter, not
            security: anyone who can reach the cluster can act on any session.

    Returns:
        :class:`~raysession.SessionDetails` records.

    Raises:
        ValueError: ``state`` is not a session state.

    Example:
        >>> for s in raysession.list_sessions(state="active"):  # doctest: +SKIP
        ...     print(s.id, s.backend_name, s.num_queued, s.owner.user)
    """
    wanted = None if state is None else SessionState(state)
    user = None if all_users else this_user()
    return [
        details
        for _, details in live_sessions()
        if (wanted is None or details.state is wanted)
        and (user is None or (details.owner is not None and details.owner.user == user))
    ]


def close_all_sessions(*, all_users: bool = False, cancel: bool = False) -> list[SessionDetails]:
    """Close every open session of this OS user on the connected cluster (or of every user).

    A closed session accepts no new jobs; its queued and running jobs finish (with
    ``cancel=True`` queued jobs are cancelled instead). Sessions already final are left as
    they are. Like :func:`list_sessions`, it never waits on an actor more than
    :data:`WAIT_S` seconds.

    Args:
        all_users: Close the sessions of every user, not only this OS user's. Off by
            default so that a shared cluster's other sessions are not closed by accident;
            it is a courtesy, not security.
        cancel: Cancel queued jobs too, as :meth:`Session.cancel` does.

    Returns:
        The details of the sessions closed, after closing.
    """
    targets = [
        actor
        for actor, details in live_sessions()
        if not details.state.is_final
        and (all_users or (details.owner is not None and details.owner.user == this_user()))
    ]
    method = "cancel" if cancel else "close"
    answers = _gather([(a, getattr(a, method).remote()) for a in targets], WAIT_S)
    return [details for _, details in answers]


def session_details(session_id: str) -> SessionDetails:
    """The details of a live session.

    Raises:
        SessionNotFoundError: no live session has that id, or it did not answer in time.
    """
    return _call(session_id, "details")  # type: ignore[no-any-return]


def session_jobs(session_id: str) -> list[JobInfo]:
    """The job records of a live session, in submission order.

    Raises:
        SessionNotFoundError: no live session has that id, or it did not answer in time.
    """
    return _call(session_id, "jobs")  # type: ignore[no-any-return]


def gather_jobs(actors: list[Any]) -> list[tuple[Any, list[JobInfo]]]:
    """``(actor, job records)`` of the given session actors, asked at once; a session that
    ends meanwhile or does not answer in :data:`WAIT_S` seconds is left out."""
    return _gather([(actor, actor.jobs.remote()) for actor in actors], WAIT_S)


def end_session(session_id: str, *, cancel: bool = False) -> SessionDetails:
    """Close (or cancel) a live session; returns its details after.

    Raises:
        SessionNotFoundError: no live session has that id, or it did not answer in time.
    """
    return _call(session_id, "cancel" if cancel else "close")  # type: ignore[no-any-return]


def _call(session_id: str, method: str) -> Any:
    actor = session_actor(session_id)
    try:
        return ray.get(getattr(actor, method).remote(), timeout=WAIT_S)
    except (RayActorError, GetTimeoutError) as exc:
        raise _not_found(session_id) from exc


def find_job(job_id: str) -> tuple[Any, JobInfo]:
    """The session actor that has the job and the job's record, asking every live
    session at once.

    Raises:
        SessionNotFoundError: no live session has the job (its session may have ended).
    """
    answers = _gather([(a, a.job_info.remote(job_id)) for a in _live_actors()], WAIT_S)
    if answers:  # the sessions that do not have it answered KeyError, and are left out
        actor, info = answers[0]
        return actor, info
    raise SessionNotFoundError(
        f"No live session has job {job_id}; a session's job records end with the session. "
        "Use service.jobs() or `raysession show SESSION_ID` to list the jobs of live sessions.",
        job_id=job_id,
    )
