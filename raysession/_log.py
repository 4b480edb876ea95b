"""raysession's logging: loggers under ``raysession``, with session and job ids on every record.

Every record of a raysession logger has the attributes ``session_id`` and ``job_id``
(``"-"`` where none applies), so one format shows them for all::

    logging.basicConfig(format="%(name)s [%(session_id)s %(job_id)s] %(message)s")

Records made in Ray actors (a session actor, the pool, a worker) reach the driver's
terminal through Ray's log forwarding, and the actors' log files; with
``ray.init(logging_config=ray.LoggingConfig(encoding="JSON"))`` the ids are JSON fields.
"""

from __future__ import annotations

import logging
from typing import Any


class _Ids(logging.Filter):
    """Gives a record the ``session_id`` and ``job_id`` its call did not give."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "session_id"):
            record.session_id = "-"
        if not hasattr(record, "job_id"):
            record.job_id = "-"
        return True


_IDS = _Ids()


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (``raysession....``), whose records carry the ids."""
    logger = logging.getLogger(name)
    if _IDS not in logger.filters:
        logger.addFilter(_IDS)
    return logger


def ids(session_id: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    """Keyword arguments of a logging call that name the session and the job."""
    return {"extra": {"session_id": session_id or "-", "job_id": job_id or "-"}}
