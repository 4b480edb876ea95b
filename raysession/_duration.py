"""Durations written as ``"2h 30m 40s"`` or ``"1d"`` converted to whole seconds, and back."""

from __future__ import annotations

import re

_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
# ASCII only: Python's \d also matches "٣" and "²", and int("²") fails with its own message.
_TERM = re.compile(r"(\d+)\s*([dhms])", re.ASCII)
_WHOLE = re.compile(r"\s*(?:\d+\s*[dhms]\s*)+", re.ASCII)
_SECONDS = re.compile(r"\s*\d+\s*", re.ASCII)

ACCEPTED = (
    "an int number of seconds, or a string of whole-number terms with units d, h, m, s "
    '(for example 3600, "45m", "1d", "2h 30m 40s")'
)


def parse_duration(value: int | str, *, what: str = "max_time") -> int:
    """Convert a duration to whole seconds.

    Args:
        value: Seconds as an ``int`` or a string of digits, or a string of summed terms
            such as ``"2h 30m 40s"``: ASCII digits, units d, h, m, s in any order, each
            unit at most once, whitespace optional.
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
    elif _SECONDS.fullmatch(value):
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


def format_duration(seconds: int) -> str:
    """Write a positive number of seconds as :func:`parse_duration` reads it back.

    Each unit appears at most once, largest first, and zero terms are left out, so
    ``parse_duration(format_duration(n)) == n`` for every ``n > 0``.

    Args:
        seconds: Whole seconds, greater than zero.

    Returns:
        The duration as terms such as ``"2h 30m 40s"``.

    Raises:
        ValueError: ``seconds`` is not an ``int`` greater than zero.

    Example:
        >>> format_duration(9040)
        '2h 30m 40s'
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise ValueError(f"format_duration needs an int number of seconds > 0, not {seconds!r}.")
    terms = []
    left = seconds
    for unit, size in _UNIT_S.items():
        count, left = divmod(left, size)
        if count:
            terms.append(f"{count}{unit}")
    return " ".join(terms)


def check_bounds(seconds: int, *, low_s: int, high_s: int, what: str = "max_time") -> int:
    """Return ``seconds`` if ``low_s <= seconds <= high_s``.

    Raises:
        ValueError: ``seconds`` lies outside the bounds; the message gives them.
    """
    if not low_s <= seconds <= high_s:
        most = f" (up to {format_duration(high_s)})" if high_s > 0 else ""
        raise ValueError(
            f"{what}={seconds} s is outside the allowed range {low_s} s to {high_s} s{most}; "
            "set RAYSESSION_MIN_MAX_TIME / RAYSESSION_MAX_MAX_TIME to change the bounds."
        )
    return seconds
