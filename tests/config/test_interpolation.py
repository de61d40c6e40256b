import pytest

from streamboot.config.interpolation import interpolate
from streamboot.errors import MissingVariableError


def test_replaces_variables_and_defaults() -> None:
    env = {"HOST": "db1"}
    tree = {"redis": {"url": "redis://${HOST}:${PORT:6379}/0"}, "n": 3, "l": ["${HOST}"]}
    assert interpolate(tree, env) == {
        "redis": {"url": "redis://db1:6379/0"}, "n": 3, "l": ["db1"]
    }


def test_empty_default_is_allowed() -> None:
    assert interpolate({"a": "x${NOPE:}y"}, {}) == {"a": "xy"}


def test_missing_variable_names_it_and_the_key() -> None:
    with pytest.raises(MissingVariableError) as info:
        interpolate({"redis": {"url": "${REDIS_URL}"}}, {})
    assert info.value.path == "redis.url"
    assert "REDIS_URL" in str(info.value)


def test_keys_are_not_interpolated() -> None:
    assert interpolate({"${A}": "v"}, {"A": "x"}) == {"${A}": "v"}
