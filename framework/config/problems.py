"""Config problems as a user reads them: file, key path, what is wrong, what was expected."""

from __future__ import annotations

import os
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import ConfigProblem

# Values under these keys are never echoed back: they may hold credentials.
_SECRET_KEYS = frozenset({"password", "url"})


def problems_from_validation(
    error: ValidationError, model: type[BaseModel], file: str,
    file_listeners: Iterable[str] | None = None, env: Mapping[str, str] | None = None,
) -> list[ConfigProblem]:
    """One problem per error; one set by an environment variable says which (else it
    reads as the file's fault — two new users' trials were misled by that)."""
    environ = {k.upper(): v for k, v in (os.environ if env is None else env).items()
               if k.upper().startswith(ENV_PREFIX)}
    declared = {name.lower() for name in file_listeners} if file_listeners is not None else None
    problems = [_from_environment(_problem(detail, model, file), environ, declared)
                for detail in error.errors(include_url=False)]
    # A listener only the environment names: one line for it, not one per missing key.
    merged: list[ConfigProblem] = []
    for problem in problems:
        if _ENV_ONLY in problem.message:
            where = ".".join(problem.path.split(".")[:2])
            key = problem.path.split(".", 2)[2]
            earlier = next((m for m in merged if m.path == where), None)
            if earlier is None:
                note = problem.message.split(" — ", 1)[1]
                merged.append(ConfigProblem(problem.file, where, f"{note}; lacks: {key}"))
            else:
                merged[merged.index(earlier)] = ConfigProblem(
                    earlier.file, where, f"{earlier.message}, {key}")
            continue
        merged.append(problem)
    return merged


_ENV_ONLY = "is not in the file; only the environment variable"


ENV_PREFIX = "STREAMBOOT_"


def _from_environment(problem: ConfigProblem, environ: Mapping[str, str],
                      declared: set[str] | None) -> ConfigProblem:
    if not environ or not problem.path:
        return problem
    parts = problem.path.split(".")
    exact = ENV_PREFIX + "__".join(parts).upper()
    if exact in environ:
        return ConfigProblem(problem.file, problem.path,
                             f"{problem.message} — set by the environment variable {exact}")
    if parts[0] == "listeners" and len(parts) > 2 and declared is not None \
            and parts[1].lower() not in declared:
        prefix = f"{ENV_PREFIX}LISTENERS__{parts[1].upper()}__"
        named = sorted(k for k in environ if k.startswith(prefix))
        if named:
            return ConfigProblem(problem.file, problem.path, (
                f"{problem.message} — listener {parts[1]!r} is not in the file; only the "
                f"environment variable {named[0]} names it (a misspelt listener name?)"))
    return problem


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
