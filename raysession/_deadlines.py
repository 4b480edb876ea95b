"""A session's deadlines as pure arithmetic: what is due at a given moment, and when to look again.

The session actor keeps the clocks; this module only reads them. Every time is a
``time.monotonic()`` reading passed in by the caller, so the rules are tested with a
fake clock (``tests/unit/test_deadlines.py``) and the actor never sleeps on its own
arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ._lifecycle import SessionState

# Upper bound on how long the watchdog sleeps when nothing is due.
IDLE_LOOK_S = 3600.0
# Lower bound, so a deadline a hair away does not spin the loop.
MIN_LOOK_S = 0.01


class Due(StrEnum):
    """A deadline that has passed, in the order they are applied."""

    EXPIRE = "expire"
    """``max_time`` after the first job started: the session expires."""
    INACTIVE = "inactive"
    """The interactive timeout after the last job finished with nothing queued."""
    CLOSE_IDLE = "close_idle"
    """A pending or inactive session had no work for its idle timeout: it closes itself."""
    EXIT = "exit"
    """A final session with no work left, whose results were handed over: the actor exits."""


@dataclass(frozen=True)
class Limits:
    """A session's fixed durations, in seconds."""

    max_time_s: float
    interactive_timeout_s: float
    idle_timeout_s: float
    undelivered_grace_s: float
    """How long a final session keeps results nobody fetched before exiting."""


@dataclass(frozen=True)
class Clocks:
    """What the deadlines depend on, read from the session at one moment."""

    state: SessionState
    busy: bool
    """Jobs are queued or running."""
    started: float | None
    """When the first job started (``max_time`` counts from here)."""
    last_completed: float | None
    """When the last job finished."""
    last_activity: float
    """When the session last accepted, started or finished a job (or was created)."""
    undelivered: bool
    """Some finished result was never handed to anyone."""


_RUNNING_CLOCK = (SessionState.ACTIVE, SessionState.INACTIVE, SessionState.DRAINING)


def due(clocks: Clocks, limits: Limits, now: float) -> tuple[Due | None, float]:
    """The first deadline that has passed at ``now``, if any, and the seconds until the
    next one (at least :data:`MIN_LOOK_S`, at most :data:`IDLE_LOOK_S`).

    Apply the returned deadline, read the clocks again and call again until nothing
    is due: applying one can make another due (an expired session may then exit).
    """
    waits = [IDLE_LOOK_S]
    state = clocks.state
    if clocks.started is not None and state in _RUNNING_CLOCK:
        left = clocks.started + limits.max_time_s - now
        if left <= 0:
            return Due.EXPIRE, 0.0
        waits.append(left)
    if state is SessionState.ACTIVE and not clocks.busy and clocks.last_completed is not None:
        left = clocks.last_completed + limits.interactive_timeout_s - now
        if left <= 0:
            return Due.INACTIVE, 0.0
        waits.append(left)
    if state in (SessionState.PENDING, SessionState.INACTIVE) and not clocks.busy:
        left = clocks.last_activity + limits.idle_timeout_s - now
        if left <= 0:
            return Due.CLOSE_IDLE, 0.0
        waits.append(left)
    if state.is_final and not clocks.busy:
        left = (
            clocks.last_activity + limits.undelivered_grace_s - now if clocks.undelivered else 0.0
        )
        if left <= 0:
            return Due.EXIT, 0.0
        waits.append(left)
    return None, min(IDLE_LOOK_S, max(MIN_LOOK_S, min(waits)))
