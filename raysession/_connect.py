"""The connection to Ray: started for the user on first use."""

from __future__ import annotations

import ray

from ._log import get_logger

logger = get_logger(__name__)

NAMESPACE = "raysession"
"""The Ray namespace every named raysession actor lives in."""


def ensure_ray() -> None:
    """Connect to Ray if this process is not connected yet.

    ``ray.init()`` honours ``RAY_ADDRESS``, so the same code joins a cluster
    there and starts a local Ray elsewhere; token authentication stays as Ray
    sets it.
    """
    if not ray.is_initialized():
        logger.info("Ray is not initialized; calling ray.init()")
        ray.init()


def actor_name(kind: str, ident: str) -> str:
    """The name of a named raysession actor (in :data:`NAMESPACE`)."""
    return f"{kind}-{ident}"


def live_session_ids() -> list[str]:
    """Ids of the live session (and batch) actors on the connected Ray cluster, sorted."""
    prefix = actor_name("session", "")
    return sorted(
        entry["name"][len(prefix) :]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == NAMESPACE and entry["name"].startswith(prefix)
    )
