"""Config problems as a user reads them: file, key path, what is wrong, what was expected."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import ConfigProblem

# Values under these keys are never echoed back: they may hold credentials.
_SECRET_KEYS = frozenset({"password", "url"})


def problems_from_validation(
    error: ValidationError, model: type[BaseModel], file: str
) -> list[ConfigProblem]:
    return [_problem(detail, model, file) for detail in error.errors(include_url=False)]


def _problem(detail: ErrorDetails, model: type[BaseModel], file: str) -> ConfigProblem:
    loc = detail["loc"]
    path = ".".join(str(part) for part in loc)
    if detail["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return ConfigProblem(file, path, f"unknown key{expected}")
    message = detail["msg"].removeprefix("Value error, ")
    shown = detail.get("input")
    if detail["type"] != "missing" and not _is_secret(loc) and not isinstance(shown, dict):
        message = f"{message} (got {_show(shown)})"
    return ConfigProblem(file, path, message)


def _is_secret(loc: Iterable[int | str]) -> bool:
    return any(str(part) in _SECRET_KEYS for part in loc)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _allowed_keys(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Walk the model along ``loc`` to list the keys valid at that point."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _step(tp: Any, part: int | str) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    origin = typing.get_origin(tp)
    if origin is dict:
        return _unwrap(typing.get_args(tp)[1])
    if origin is list:
        return _unwrap(typing.get_args(tp)[0])
    return None


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``, so optional sections are walked too."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, type(int | None)) and len(args) == 1:
        return args[0]
    return tp
