"""Durations written as ``"2h 30m 40s"`` or ``"1d"`` converted to whole seconds."""

from __future__ import annotations

import re

_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_TERM = re.compile(r"(\d+)\s*([dhms])")
_WHOLE = re.compile(r"\s*(?:\d+\s*[dhms]\s*)+")

ACCEPTED = (
    "an int number of seconds, or a string of whole-number terms with units d, h, m, s "
    '(for example 3600, "45m", "1d", "2h 30m 40s")'
)


def parse_duration(value: int | str, *, what: str = "max_time") -> int:
    """Convert a duration to whole seconds.

    Args:
        value: Seconds as an ``int``, or a string of summed terms such as ``"2h 30m 40s"``.
        what: The option's name, for the error message.

    Returns:
        The duration in seconds; always greater than zero.

    Raises:
        ValueError: ``value`` is not of an accepted form (an unknown unit, a unit given
            twice as in ``"1h 1h"``), or is zero or negative.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{what}={value!r} is not a duration; use {ACCEPTED}.")
    if isinstance(value, int):
        seconds = value
    elif value.strip().isdigit():
        seconds = int(value.strip())
    elif _WHOLE.fullmatch(value):
        terms = _TERM.findall(value)
        units = [unit for _, unit in terms]
        for unit in units:
            if units.count(unit) > 1:
                raise ValueError(
                    f"{what}={value!r} gives unit {unit!r} more than once; give each unit at "
                    f'most once, summed (for example "2h 30m"); use {ACCEPTED}.'
                )
        seconds = sum(int(n) * _UNIT_S[unit] for n, unit in terms)
    else:
        raise ValueError(f"{what}={value!r} is not a duration; use {ACCEPTED}.")
    if seconds <= 0:
        raise ValueError(f"{what}={value!r} must be greater than zero; use {ACCEPTED}.")
    return seconds


def check_bounds(seconds: int, *, low_s: int, high_s: int, what: str = "max_time") -> int:
    """Return ``seconds`` if ``low_s <= seconds <= high_s``.

    Raises:
        ValueError: ``seconds`` lies outside the bounds; the message gives them.
    """
    if not low_s <= seconds <= high_s:
        raise ValueError(
            f"{what}={seconds} s is outside the allowed range {low_s} s to {high_s} s "
            "(set RAYSESSION_MIN_MAX_TIME / RAYSESSION_MAX_MAX_TIME to change the bounds)."
        )
    return seconds
