"""SessionState, the transitions a session may make, and the status strings it reports."""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    """Where a session is in its life.

    ``pending`` → ``active`` when a job starts; ``active`` → ``inactive`` when
    the interactive timeout passes with nothing queued; ``inactive`` → ``active``
    on the next job; ``draining`` after ``close()`` while queued jobs still run.
    ``closed``, ``cancelled`` and ``expired`` are final.
    """

    PENDING = "pending"
    ACTIVE = "active"
    INACTIVE = "inactive"
    DRAINING = "draining"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """True for closed, cancelled and expired."""
        return self in _FINAL

    @property
    def is_accepting(self) -> bool:
        """True while new jobs are accepted."""
        return self in _ACCEPTING

    def status(self) -> str:
        """The status string qiskit-ibm-runtime reports for this state."""
        return _STATUS[self]


_FINAL = frozenset({SessionState.CLOSED, SessionState.CANCELLED, SessionState.EXPIRED})
_ACCEPTING = frozenset({SessionState.PENDING, SessionState.ACTIVE, SessionState.INACTIVE})
_STATUS = {
    SessionState.PENDING: "Pending",
    SessionState.ACTIVE: "In progress, accepting new jobs",
    SessionState.INACTIVE: "Pending",
    SessionState.DRAINING: "In progress, not accepting new jobs",
    SessionState.CLOSED: "Closed",
    SessionState.CANCELLED: "Closed",
    SessionState.EXPIRED: "Closed",
}

_ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    SessionState.PENDING: frozenset(
        {SessionState.ACTIVE, SessionState.DRAINING, SessionState.CLOSED, SessionState.CANCELLED}
    ),
    SessionState.ACTIVE: frozenset(
        {
            SessionState.INACTIVE,
            SessionState.DRAINING,
            SessionState.CLOSED,
            SessionState.CANCELLED,
            SessionState.EXPIRED,
        }
    ),
    SessionState.INACTIVE: frozenset(
        {
            SessionState.ACTIVE,
            SessionState.DRAINING,
            SessionState.CLOSED,
            SessionState.CANCELLED,
            SessionState.EXPIRED,
        }
    ),
    SessionState.DRAINING: frozenset(
        {SessionState.CLOSED, SessionState.CANCELLED, SessionState.EXPIRED}
    ),
    SessionState.CLOSED: frozenset(),
    SessionState.CANCELLED: frozenset(),
    SessionState.EXPIRED: frozenset(),
}


def can_transition(current: SessionState, new: SessionState) -> bool:
    """True if a session in ``current`` may move to ``new``."""
    return new in _ALLOWED[current]


def transition(current: SessionState, new: SessionState) -> SessionState:
    """Return ``new`` after checking the move is allowed.

    Raises:
        RuntimeError: the move is not allowed (a bug in the caller, not user input).
    """
    if not can_transition(current, new):
        raise RuntimeError(f"session cannot move from {current} to {new}")
    return new
