"""Human durations (``500ms``, ``30s``, ``5m``, ``1h``) for every timing key in the YAML.

Operators think in these units; raw millisecond integers in YAML are how a
``poll_timeout: 2000`` meant as seconds ends up blocking for half an hour.
A bare number is read as seconds, the unit every Redis timing except BLOCK uses.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from ..errors import InvalidDuration

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
"""A number with a unit; a bare number is seconds, as text too (``${VAR:2}``, an
environment override, a quoted ``"1.5"``) as it is as a YAML number."""


def parse_duration(value: object) -> timedelta:
    """Read ``500ms``/``30s``/``5m``/``1h``/``1d`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise InvalidDuration("expected a duration such as 500ms, 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None and value.strip().startswith("-"):
            raise InvalidDuration(f"{value!r}: a duration cannot be negative")
        if match is None:
            raise InvalidDuration(
                f"{value!r} is not a duration: expected a number with a unit, "
                "such as 500ms, 30s, 5m or 1h"
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise InvalidDuration("expected a duration such as 500ms, 30s, 5m or 1h")
    if seconds < 0:
        raise InvalidDuration("a duration cannot be negative")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling, so ``check`` output reads like the YAML."""
    ms = round(value.total_seconds() * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


def to_ms(value: timedelta) -> int:
    """Whole milliseconds, as BLOCK, IDLE and PEXPIRE want them."""
    return round(value.total_seconds() * 1000)
