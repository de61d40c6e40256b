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


def interpolate(tree: Any, env: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Return ``tree`` with every ``${VAR}`` in a string value replaced."""
    environ = os.environ if env is None else env
    if isinstance(tree, dict):
        return {
            k: interpolate(v, environ, f"{path}.{k}" if path else str(k)) for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [interpolate(v, environ, f"{path}[{i}]") for i, v in enumerate(tree)]
    if isinstance(tree, str) and "${" in tree:
        return _replace(tree, environ, path)
    return tree


def _replace(text: str, env: Mapping[str, str], path: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise MissingVariableError(name, path)

    return _VAR.sub(substitute, text)
