"""The configuration reference, generated from the models themselves.

docs/configuration.md's key tables sit between ``<!-- generated: SECTION -->`` and
``<!-- end generated -->`` markers; this module renders them from the pydantic models —
every key, its type, its default, its description (the attribute's docstring) — so the
page can never drift from what the file accepts. A test fails when the page differs from
what this renders, and when a key has no description.

    python -m streamboot.config.reference --write docs/configuration.md   # regenerate
    python -m streamboot.config.reference --check docs/configuration.md   # exit 1 if stale
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .durations import format_duration
from .models import (
    ApplicationSettings,
    ContainerSettings,
    ListenerSettings,
    LoggingSettings,
    MembershipSettings,
    MetricsSettings,
    RedisSettings,
    SchedulerSettings,
)

SECTIONS: dict[str, type[BaseModel]] = {
    "application": ApplicationSettings,
    "redis": RedisSettings,
    "container": ContainerSettings,
    "listeners.<name>": ListenerSettings,
    "scheduler": SchedulerSettings,
    "membership": MembershipSettings,
    "metrics": MetricsSettings,
    "logging": LoggingSettings,
}

_BLOCK = re.compile(
    r"(<!-- generated: (?P<section>[^ ]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    meaning: str


def _nested(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (and whether it may be absent), or (None, …)."""
    args = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    optional = type(None) in args
    for arg in args:
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, optional
    return None, optional


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) is typing.Union or isinstance(annotation,
                                                                        types.UnionType)


def _type_name(annotation: Any) -> str:
    if _is_union(annotation):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation)
                           if a is not type(None))
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner = typing.get_args(annotation)[0]
        return "duration" if inner is timedelta else _type_name(inner)
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if annotation is timedelta:
        return "duration"
    if annotation is SecretStr:
        return "secret"
    names = {str: "string", int: "integer", bool: "boolean", float: "number"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field: FieldInfo) -> str:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    shown = extra.get("default_shown")
    if isinstance(shown, str):
        return shown
    if field.is_required():
        return "required"
    value = field.default
    if value is PydanticUndefined:
        return "computed"
    if value is None:
        return "none"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int):  # 10,000 reads better than 10000; a port 9464 does not
        return f"`{value:,}`" if value >= 10_000 else f"`{value}`"
    return f"`{value}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[Row]:
    """Every key of ``model`` (nested models flattened as ``retry.backoff``)."""
    found = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested, optional = _nested(field.annotation)
        if nested is not None:
            if optional:  # the section itself: absent = the feature is off
                found.append(Row(f"`{key}`", "section", "none", _meaning(model, name, field)))
            found.extend(rows(nested, f"{key}."))
            continue
        found.append(Row(f"`{key}`", _type_name(field.annotation), _default(field),
                         _meaning(model, name, field)))
    return found


def _meaning(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    if not field.description:
        raise ValueError(f"{model.__name__}.{name} has no description: write a docstring "
                         "under it (it is the configuration reference's text)")
    return " ".join(field.description.split()).replace("|", "\\|")


def table(section: str) -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| {r.key} | {r.type} | {r.default} | {r.meaning} |"
              for r in rows(SECTIONS[section])]
    return "\n".join(lines) + "\n"


def render(page: str) -> str:
    """``page`` with every generated block rendered anew."""
    def block(match: re.Match[str]) -> str:
        section = match.group("section")
        if section not in SECTIONS:
            raise ValueError(f"unknown section {section!r}: expected one of {', '.join(SECTIONS)}")
        return f"{match.group(1)}{table(section)}{match.group(4)}"

    return _BLOCK.sub(block, page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streamboot.config.reference")
    parser.add_argument("page", type=Path)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    page = args.page.read_text(encoding="utf-8")
    fresh = render(page)
    if args.write:
        args.page.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != page:
        sys.stderr.write(f"{args.page} is stale: run python -m streamboot.config.reference "
                         f"--write {args.page}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
