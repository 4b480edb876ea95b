"""Property tests of the duration grammar: format and parse are inverses, and bad input is refused.

The grammar (``raysession._duration``): an ``int`` of seconds, a string of ASCII digits,
or a string of terms ``<digits><optional spaces><unit>`` with units d, h, m, s, in any
order, each unit at most once, with optional whitespace around and between terms; the
total must be greater than zero. Anything else raises ``ValueError`` naming the accepted
forms.
"""

import re
import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from raysession._duration import ACCEPTED, format_duration, parse_duration

_UNIT_S = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_LIMIT = {"d": None, "h": 24, "m": 60, "s": 60}
_SPACE = st.sampled_from(["", " ", "  ", "\t", "\n"])
_PROPERTY = settings(max_examples=60, deadline=None)


@st.composite
def _terms(draw, min_size=1):
    """(count, unit) pairs: each unit at most once, in any order."""
    units = draw(st.lists(st.sampled_from("dhms"), min_size=min_size, max_size=4, unique=True))
    return [(draw(st.integers(0, 10**6)), unit) for unit in units]


@st.composite
def _written(draw, terms):
    """``terms`` written as the grammar allows: leading zeros and whitespace anywhere."""
    parts = [draw(_SPACE)]
    for count, unit in terms:
        digits = str(count).zfill(draw(st.integers(1, 3)))
        parts += [digits, draw(_SPACE), unit, draw(_SPACE)]
    return "".join(parts)


@_PROPERTY
@given(st.integers(1, 10**12))
@example(1)
@example(59)
@example(60)
@example(86_399)
@example(86_400)
@example(9040)
def test_format_then_parse_gives_back_any_positive_number_of_seconds(seconds):
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    # Canonical: terms split by one space, units largest first, each once, no zero term,
    # and each count below the next unit up (no "90m").
    terms = [re.fullmatch(r"([1-9][0-9]*)([dhms])", term) for term in text.split(" ")]
    assert all(terms), text
    units = [term[2] for term in terms]
    assert units == sorted(units, key=list(_UNIT_S).index) and len(set(units)) == len(units)
    assert all(_LIMIT[term[2]] is None or int(term[1]) < _LIMIT[term[2]] for term in terms)


@_PROPERTY
@given(st.data())
def test_any_well_formed_duration_parses_to_its_sum_and_reparses_stably(data):
    terms = data.draw(_terms())
    text = data.draw(_written(terms))
    total = sum(count * _UNIT_S[unit] for count, unit in terms)
    if total == 0:
        with pytest.raises(ValueError, match="must be greater than zero"):
            parse_duration(text)
        return
    seconds = parse_duration(text)
    assert seconds == total
    canonical = format_duration(seconds)
    assert parse_duration(canonical) == seconds
    assert format_duration(parse_duration(canonical)) == canonical


@_PROPERTY
@given(st.integers(1, 10**12), _SPACE, _SPACE)
def test_a_bare_number_of_seconds_parses_as_int_or_string(seconds, before, after):
    assert parse_duration(seconds) == seconds
    assert parse_duration(f"{before}{seconds}{after}") == seconds


@_PROPERTY
@given(st.data())
def test_a_repeated_unit_is_refused_and_named(data):
    terms = data.draw(_terms())
    _, unit = data.draw(st.sampled_from(terms))
    again = (data.draw(st.integers(0, 10**6)), unit)
    terms.insert(data.draw(st.integers(0, len(terms))), again)
    text = data.draw(_written(terms))
    with pytest.raises(ValueError, match=f"gives unit '{unit}' more than once"):
        parse_duration(text)


_NOT_UNITS = "".join(sorted(set(string.ascii_letters) - set("dhms"))) + "µé%."


@_PROPERTY
@given(st.data())
def test_an_unknown_unit_is_refused_saying_what_is_accepted(data):
    terms = data.draw(_terms())
    position = data.draw(st.integers(0, len(terms) - 1))
    terms[position] = (terms[position][0], data.draw(st.sampled_from(_NOT_UNITS)))
    text = data.draw(_written(terms))
    with pytest.raises(ValueError, match=re.escape(f"is not a duration; use {ACCEPTED}")):
        parse_duration(text)


@_PROPERTY
@given(st.data())
def test_a_negative_duration_is_refused(data):
    seconds = data.draw(st.integers(1, 10**12))
    with pytest.raises(ValueError, match="must be greater than zero"):
        parse_duration(-seconds)
    words = [f"{count}{unit}" for count, unit in data.draw(_terms())]
    position = data.draw(st.integers(0, len(words) - 1))
    words[position] = "-" + words[position]
    text = data.draw(_SPACE).join(words)
    with pytest.raises(ValueError, match=re.escape(f"is not a duration; use {ACCEPTED}")):
        parse_duration(text)
    with pytest.raises(ValueError, match=re.escape(f"is not a duration; use {ACCEPTED}")):
        parse_duration(f"-{seconds}")


@_PROPERTY
@given(st.text(max_size=12))
# Unicode digits: Python's \d and str.isdigit() take them, but int("²") fails with its own message.
@example("²")
@example("٣h")
@example("\uff11h")
@example("1h ²s")
@example("\u2003 90")
def test_any_text_parses_to_positive_seconds_or_says_what_is_accepted(text):
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        assert ACCEPTED in str(exc)
    else:
        assert type(seconds) is int and seconds > 0
        assert text.isascii()
