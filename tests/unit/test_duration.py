import pytest

from raysession._duration import check_bounds, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (3600, 3600),
        ("45m", 2700),
        ("1d", 86400),
        ("2h 30m 40s", 9040),
        ("2h30m", 9000),
        ("90", 90),
    ],
)
def test_parse_duration_accepts_seconds_and_unit_terms(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["1.5h", "abc", "", "2x", "h", "-5", "10 minutes", 1.5, None, True]
)
def test_parse_duration_rejects_junk_and_says_what_is_accepted(value):
    with pytest.raises(ValueError, match="is not a duration; use an int number of seconds"):
        parse_duration(value)


@pytest.mark.parametrize(("value", "unit"), [("1h 1h", "h"), ("2h 30m 5m", "m"), ("1s 1d 1s", "s")])
def test_parse_duration_rejects_a_repeated_unit_and_names_it(value, unit):
    # Issue 10: "1h 1h" was summed to 7200 s; a repeated unit is almost always a typo.
    with pytest.raises(ValueError, match=f"unit '{unit}' more than once; give each unit at most"):
        parse_duration(value)


@pytest.mark.parametrize("value", [0, -1, "0s", "0h 0m"])
def test_parse_duration_rejects_zero_and_negative(value):
    with pytest.raises(ValueError, match="must be greater than zero"):
        parse_duration(value)


def test_check_bounds_names_the_range():
    assert check_bounds(10, low_s=1, high_s=10) == 10
    with pytest.raises(ValueError, match=r"outside the allowed range 1 s to 28800 s \(up to 8h\)"):
        check_bounds(28801, low_s=1, high_s=28800)
