"""Reading ``RAYSESSION_*`` environment variables: seconds and counts, checked where they are read.

Every setting raysession takes from the environment goes through these functions,
so an unset or blank variable means the default everywhere, and a bad value fails
in the process that reads it with one kind of message: the variable, the value as
given, and what is accepted. Pure Python; imports only :mod:`._duration`.
"""

from __future__ import annotations

import math
import os
import re
from typing import overload

from ._duration import parse_duration

_WHOLE = re.compile(r"[0-9]+")


def _raw(name: str) -> str:
    """The variable's value with surrounding blanks removed; ``""`` when unset."""
    return os.environ.get(name, "").strip()


def env_seconds(name: str, default: float) -> float:
    """A positive, finite number of seconds from the environment variable ``name``.

    Args:
        name: The variable, such as ``"RAYSESSION_WORKER_IDLE_S"``.
        default: The value when the variable is unset or blank.

    Returns:
        The seconds; fractions are allowed (``"0.5"``).

    Raises:
        ValueError: the value is not a number, or is zero, negative, ``nan`` or infinite.
    """
    raw = _raw(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{name}={raw!r} must be a positive number of seconds, such as {default:g}"
        )
    return value


def env_whole_seconds(name: str, default: int) -> int:
    """A whole number of seconds, at least 1, from the environment variable ``name``.

    For bounds that are compared with durations in whole seconds, such as ``max_time``.

    Raises:
        ValueError: the value is not written as digits only (``"1.5"``, ``"1h"``, ``"-1"``),
            or is zero.
    """
    raw = _raw(name)
    if not raw:
        return default
    if not _WHOLE.fullmatch(raw) or int(raw) < 1:
        raise ValueError(
            f"{name}={raw!r} must be a whole number of seconds, at least 1, such as {default}"
        )
    return int(raw)


@overload
def env_count(name: str, default: int, *, minimum: int = 0) -> int: ...
@overload
def env_count(name: str, default: None, *, minimum: int = 0) -> int | None: ...
def env_count(name: str, default: int | None, *, minimum: int = 0) -> int | None:
    """A whole number, at least ``minimum``, from the environment variable ``name``.

    Args:
        name: The variable, such as ``"RAYSESSION_MAX_CHUNK_RETRIES"``.
        default: The value when the variable is unset or blank; ``None`` where the
            caller works the default out itself.
        minimum: The smallest count that makes sense (``1`` for a number of workers).

    Raises:
        ValueError: the value is not written as digits only (``"1.5"``, ``"-1"``,
            ``"inf"``), or is below ``minimum``.
    """
    raw = _raw(name)
    if not raw:
        return default
    if not _WHOLE.fullmatch(raw) or int(raw) < minimum:
        example = minimum if default is None else default
        raise ValueError(
            f"{name}={raw!r} must be a whole number, at least {minimum}, such as {example}"
        )
    return int(raw)


def env_duration(name: str, default: str) -> int:
    """A duration in whole seconds from ``name``, written as ``max_time`` is (``"7d"``,
    ``"12h 30m"``, ``"3600"``).

    Raises:
        ValueError: the value is not such a duration, or is zero.
    """
    raw = _raw(name) or default
    try:
        return parse_duration(raw, what=name)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} must be a duration of d/h/m/s terms or whole seconds, such as "
            f"{default!r}"
        ) from None


def env_switch(name: str, default: bool) -> bool:
    """On or off from the environment variable ``name``: ``on``/``off`` (also ``1``/``0``,
    ``true``/``false``, ``yes``/``no``, any case).

    Raises:
        ValueError: any other value.
    """
    raw = _raw(name)
    if not raw:
        return default
    word = raw.lower()
    if word in ("on", "1", "true", "yes"):
        return True
    if word in ("off", "0", "false", "no"):
        return False
    raise ValueError(f"{name}={raw!r} must be on or off, such as {'on' if default else 'off'}")
