"""The ``streamboot`` command line: ``run`` and ``check`` the application file; the
admin commands (``status``, ``pending``, ``publish``, ``replay``, ``wait``, ``dlq …``), which
read the same file for where Redis is (see common.py); ``new`` writes a starter project."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from . import dlq
from .asyncapi import asyncapi
from .console import console
from .dashboards import dashboards
from .new import new
from .run import check, run
from .streams import pending, publish, replay, status
from .wait import wait

app = typer.Typer(help="Streamboot: declarative Redis Streams consumers.", no_args_is_help=True,
                  add_completion=False, rich_markup_mode=None)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"streamboot {version('streamboot')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("streamboot (not installed)")
        raise typer.Exit(0)


@app.callback()
def _root(_version_: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")]
          = False) -> None:
    """Streamboot: declarative Redis Streams consumers."""


for command in (run, check, status, pending, publish, replay, new, asyncapi, dashboards,
                wait, console):
    app.command()(command)
app.add_typer(dlq.app, name="dlq")


def main() -> None:
    app()


__all__ = ["app", "main"]
