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
