"""The files a docs page shows: each fenced block whose first line names a file."""

from __future__ import annotations

import re


def documented_files(text: str) -> dict[str, str]:
    """``# path`` as a python or yaml block's first line → the block's text below it."""
    files = {}
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", text, re.S):
        first, _, rest = body.partition("\n")
        if first.startswith("# ") and ("/" in first or first.endswith((".py", ".yaml"))):
            files[first[2:].strip()] = rest
    return files


def forget_modules(package: str) -> None:
    """Drop ``package`` and its modules from ``sys.modules``: a page's project imported
    under a common name (``shop``) must not shadow the next page's of the same name."""
    import sys

    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]
