"""``${VAR}`` and ``${VAR:default}`` in YAML values, resolved before validation.

Resolution happens on the parsed tree (values only, never keys) so a variable's
content can never change the document's structure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..errors import MissingVariableError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def interpolate(tree: Any, env: Mapping[str, str] | None = None, path: str = "",
                missing: list[MissingVariableError] | None = None) -> Any:
    """Return ``tree`` with every ``${VAR}`` in a string value replaced.

    An unset variable without default raises :class:`MissingVariableError` — or, given a
    ``missing`` list, is appended to it and replaced by an empty string, so the caller can
    report every unset variable and every other problem of the file together."""
    environ = os.environ if env is None else env
    if isinstance(tree, dict):
        return {k: interpolate(v, environ, f"{path}.{k}" if path else str(k), missing)
                for k, v in tree.items()}
    if isinstance(tree, list):
        return [interpolate(v, environ, f"{path}[{i}]", missing) for i, v in enumerate(tree)]
    if isinstance(tree, str) and "${" in tree:
        return _replace(tree, environ, path, missing)
    return tree


def _replace(text: str, env: Mapping[str, str], path: str,
             missing: list[MissingVariableError] | None) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        if missing is None:
            raise MissingVariableError(name, path)
        missing.append(MissingVariableError(name, path))
        return ""

    return _VAR.sub(substitute, text)
