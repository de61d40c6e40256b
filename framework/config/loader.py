"""Read ``application.yaml``: parse, interpolate ``${VAR}``, merge the environment, validate."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from framework.config.errors import ConfigError, ConfigProblem, problems_from_validation
from framework.config.interpolation import MissingVariableError, interpolate
from framework.config.models import AppSettings


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> AppSettings:
    """The validated application file, or a :class:`ConfigError` listing every problem."""
    file = str(path)
    tree = _read_yaml(Path(path))
    try:
        resolved = interpolate(tree, env)
    except MissingVariableError as exc:
        raise ConfigError([ConfigProblem(file, exc.path, str(exc))]) from None
    return settings_from_mapping(resolved, file)


def settings_from_mapping(data: Mapping[str, Any], file: str = "<settings>") -> AppSettings:
    try:
        return AppSettings(**data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, AppSettings, file)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = ConfigProblem(file, "", f"cannot read the file: {exc.strerror}")
        raise ConfigError([problem]) from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, "", f"invalid YAML: {where}{what}")]) from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        found = type(tree).__name__
        problem = ConfigProblem(file, "", f"expected a mapping at the top level, got {found}")
        raise ConfigError([problem])
    return tree
