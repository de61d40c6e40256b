"""``streamboot new DIR``: write a starter project (see scaffold.py)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from .common import USAGE, fail
from .scaffold import package_name, starter_files


def new(directory: Annotated[Path, typer.Argument(
        metavar="DIR",
        help="Where to create the project (must not exist, or be empty; missing parent "
             "directories are created).")]) -> None:
    """Create a runnable starter project: app.yaml, one handler, one test using the kit."""
    if not str(directory).strip() or (directory.resolve() == Path.cwd() and str(directory) in (
            "", ".")):
        fail(USAGE, "give the new project's directory, e.g. streamboot new my-shop")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        fail(USAGE, f"{directory} exists and is not an empty directory: nothing written")
    files = starter_files(directory.resolve().name)
    try:
        for relative, text in files.items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(USAGE, f"cannot write {directory}: {exc.strerror}")
    package = package_name(directory.resolve().name)
    typer.echo(f"created {directory}: app.yaml, {package}/handlers.py, tests/test_handlers.py")
    typer.echo(f"next:  cd {shlex.quote(str(directory))} && pip install -e '.[test]' && pytest")
