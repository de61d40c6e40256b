"""Read ``application.yaml``: parse, interpolate ``${VAR}``, validate. ``STREAMBOOT_*``
variables override keys in the validation itself (config/models.py ``AppSettings``, from
the process environment); the ``env`` given here feeds ``${VAR}`` only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

try:
    from pydantic_settings import SettingsError
except ImportError:  # pydantic-settings before 2.3 kept it in its sources module
    from pydantic_settings.sources import SettingsError  # type: ignore[attr-defined,no-redef]

from ..errors import ConfigError, ConfigProblem, MissingVariableError
from .interpolation import interpolate
from .models import AppSettings
from .problems import problems_from_validation


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> AppSettings:
    """The validated application file, or a :class:`ConfigError` listing every problem."""
    file = str(path)
    tree = read_yaml(Path(path))
    if not tree:
        raise ConfigError([ConfigProblem(file, "", "the file is empty: declare at least one "
                                                   "listener (see docs/configuration.md)")])
    missing: list[MissingVariableError] = []
    resolved = interpolate(tree, env, missing=missing)
    if not missing:
        return settings_from_mapping(resolved, file)
    # Every unset variable, and every other problem of the file (not those of the values
    # the unset variables left empty: they would only repeat the same cause).
    problems = [ConfigProblem(file, exc.path, str(exc)) for exc in missing]
    unset = {exc.path for exc in missing}
    try:
        settings_from_mapping(resolved, file)
    except ConfigError as exc:
        problems += [p for p in exc.problems if p.path not in unset]
    raise ConfigError(problems)


def settings_from_mapping(data: Mapping[str, Any], file: str = "<settings>") -> AppSettings:
    try:
        return AppSettings(**data)
    except SettingsError as exc:  # a STREAMBOOT_* variable that is not the JSON it must be
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise ConfigError([ConfigProblem(
            "environment", field, f"a STREAMBOOT_{field.upper()}… variable holds a list "
            "or mapping that is not valid JSON (e.g. [\"a\", \"b\"] or {\"k\": 1}); "
            f"{exc.__cause__ or exc}")]) from None
    except ValidationError as exc:
        listeners = data.get("listeners")
        declared = list(listeners) if isinstance(listeners, Mapping) else []
        raise ConfigError(problems_from_validation(exc, AppSettings, file, declared)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently: two listeners with the same name
    would quietly become one. This loader refuses a key given twice, naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {seen[key]} and {line}); "
                    "the second would silently replace the first", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping (empty for an empty file), or a ConfigError."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problem = ConfigProblem(file, "", f"cannot read the file: {exc.strerror}")
        raise ConfigError([problem]) from None
    try:
        tree = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
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
