"""The ``streamboot`` command line: run and check an application file."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from framework.application import Application
from framework.check import check_application
from framework.cli_inspect import register as register_inspect_commands
from framework.config.errors import ConfigError, ConfigProblem
from framework.config.loader import load_settings
from framework.errors import StartupError
from framework.listener.container import CANCEL_GRACE
from framework.logs import configure_logging
from framework.shutdown import (
    EXIT_CANNOT_START,
    EXIT_CONFIG,
    EXIT_FORCED,
    StopDeadline,
    run_process,
)

app = typer.Typer(help="Streamboot: declarative Redis Streams consumers.", no_args_is_help=True,
                  add_completion=False)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

ConfigArg = Annotated[Path, typer.Argument(help="The application file (YAML).")]


def _import_from_cwd() -> None:
    """Handlers named 'pkg.module:Class' are found relative to where the command runs."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


@app.command()
def run(config: ConfigArg) -> None:
    """Start every listener and scheduled job; stop gracefully on SIGINT/SIGTERM."""
    _import_from_cwd()
    try:
        settings = load_settings(config)
        if not any(listener.enabled for listener in settings.listeners.values()):
            raise ConfigError([ConfigProblem(str(config), "listeners", "no listener is "
                                             "declared (or all are disabled): nothing to run")])
        configure_logging(settings.logging)
        application = Application(settings, source=str(config))
    except ConfigError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    deadline = StopDeadline()  # armed at the signal; ends the process if the stop hangs
    try:
        code = run_process(application.run_until_signalled(deadline), grace=CANCEL_GRACE)
    except asyncio.CancelledError:
        err.print("[red]forced stop: in-flight entries stay pending[/red]")
        raise typer.Exit(EXIT_FORCED) from None
    except StartupError as exc:
        err.print(f"streamboot: cannot start: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_CANNOT_START) from None
    except ConfigError as exc:  # a handler that cannot be resolved
        _print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    finally:
        deadline.cancel()
    if code == EXIT_CANNOT_START and application.failure is not None:
        err.print(f"streamboot: cannot start: {application.failure}", markup=False,
                  soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def check(config: ConfigArg) -> None:
    """Validate the file, import every handler, connect to Redis; exit 2 on any problem."""
    _import_from_cwd()
    settings, problems = asyncio.run(check_application(config))
    if problems:
        _print_problems(ConfigError(problems))
        raise typer.Exit(2)
    assert settings is not None
    out.print(f"[green]OK[/green] {config}: {len(settings.listeners)} listener(s), "
              f"redis {settings.redis.safe_url}", soft_wrap=True)


@app.command()
def replay(
    stream: Annotated[str, typer.Argument(help="The stream key.")],
    group: Annotated[str, typer.Argument(help="The consumer group.")],
    from_id: Annotated[str, typer.Option("--from", help="First entry id to deliver again.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do it (otherwise: only show).")] = False,
    url: Annotated[str, typer.Option(envvar="REDIS_URL", help="Redis URL.")] = (
        "redis://127.0.0.1:6379/0"),
) -> None:
    """Deliver a group's entries again from an id (XGROUP SETID)."""
    asyncio.run(_replay(stream, group, from_id, yes, url))


async def _replay(stream: str, group: str, from_id: str, yes: bool, url: str) -> None:
    from framework.client import build_client
    from framework.config.models import RedisSettings
    from framework.errors import StreambootError
    from framework.operator import RedisOperator
    from framework.replay import apply_replay, plan_replay

    client = build_client(RedisSettings(url=url))
    try:
        plan = await plan_replay(RedisOperator(client), stream, group, from_id)
        if not yes:
            out.print(f"would move {plan.describe()}", soft_wrap=True)
            out.print("nothing changed: add --yes to do it")
            return
        await apply_replay(RedisOperator(client), plan)
        out.print(f"moved {plan.describe()}", soft_wrap=True)
    except StreambootError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    finally:
        await client.aclose()


def _print_problems(exc: ConfigError) -> None:
    err.print(f"[red]{len(exc.problems)} problem(s):[/red]")
    for problem in exc.problems:
        err.print(f"  {problem}", markup=False, soft_wrap=True)


register_inspect_commands(app)


def main() -> None:
    app()
