from datetime import timedelta

import pytest

from streamboot.config.durations import format_duration, parse_duration, to_ms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("1.5s", timedelta(milliseconds=1500)),
        (2, timedelta(seconds=2)),
        (" 10 s ", timedelta(seconds=10)),
        # a bare number is seconds as text too: ${VAR:2}, environment overrides, "1.5"
        ("3", timedelta(seconds=3)),
        ("1.5", timedelta(milliseconds=1500)),
    ],
)
def test_parses_units(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["2x", "ms", "", "-1s", True, None, [1]])
def test_rejects_what_is_not_a_duration(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_format_round_trips() -> None:
    for text in ("500ms", "30s", "5m", "1h", "1500ms"):
        assert format_duration(parse_duration(text)) == text


def test_to_ms() -> None:
    assert to_ms(parse_duration("2s")) == 2000
