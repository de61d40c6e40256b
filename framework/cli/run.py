"""``streamboot run`` and ``streamboot check``: the application file's two commands.

Exit codes of ``run``: 0 stopped, every handler finished; 1 forced (a second signal, or
handlers still running at ``shutdown_timeout``); 2 the file, or a handler, is invalid;
3 cannot start (authentication, a permission, every listener's key of the wrong type, a
server too old). ``check``: 0 all good, 2 one or more problems.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from loguru import logger
from pydantic import ValidationError

from ..application import Application
from ..config.loader import load_settings
from ..config.models import AppSettings, MembershipSettings
from ..errors import ConfigError, ConfigProblem, StartupError
from ..listener.container import CANCEL_GRACE
from ..observability.logs import configure_logging
from ..process.shutdown import (
    EXIT_CANNOT_START,
    EXIT_CONFIG,
    EXIT_FORCED,
    StopDeadline,
    run_process,
)
from ..process.supervisor import Supervisor
from .checks import check_application, handler_problems_of
from .common import ConfigOption, err, out, print_problems

ConfigArg = Annotated[Path | None, typer.Argument(
    metavar="CONFIG", help="The application file (YAML); same as --config.")]


def _app_file(positional: Path | None, option: Path | None) -> Path:
    """``run`` and ``check`` take the file as the admin commands do (``--config``,
    ``STREAMBOOT_CONFIG``), and positionally as they always have."""
    config = positional or option
    if config is None:
        err.print("streamboot: no application file: give it as CONFIG, --config or "
                  "STREAMBOOT_CONFIG", markup=False)
        raise typer.Exit(EXIT_CONFIG)
    return config


def _import_from_cwd() -> None:
    """Handlers named 'pkg.module:Class' are found relative to where the command runs."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


WorkersOption = Annotated[int, typer.Option(
    "--workers", "-w", min=1, max=256, help="Worker processes under one supervisor "
    "(docs/scaling.md); 1: this process runs the listeners itself.")]
def _member_id(value: str | None) -> str | None:
    """``--member-id`` checked as the option it is (not as the environment variable it
    is passed on in)."""
    if value is not None:
        try:
            MembershipSettings(member_id=value)
        except ValidationError as exc:
            raise typer.BadParameter(str(exc.errors()[0]["msg"]).removeprefix(
                "Value error, ")) from None
    return value


MemberIdOption = Annotated[str | None, typer.Option(
    "--member-id", callback=_member_id, help="A stable member id for partitioned "
    "listeners (a StatefulSet's pod name): restarted within lease_ttl, it takes its "
    "partitions back. Sets STREAMBOOT_MEMBERSHIP__MEMBER_ID.")]


def run(config_arg: ConfigArg = None, config_option: ConfigOption = None,
        workers: WorkersOption = 1, member_id: MemberIdOption = None) -> None:
    """Run the listeners and jobs until SIGINT/SIGTERM.

    Exit codes: 0 stopped, 1 forced (handlers cut off), 2 bad file or handler, 3 cannot
    start (authentication, a permission, key types, server version)."""
    config = _app_file(config_arg, config_option)
    _import_from_cwd()
    if member_id is not None:  # the workers inherit it, each adding -w<i>
        os.environ["STREAMBOOT_MEMBERSHIP__MEMBER_ID"] = member_id
    try:
        settings = load_settings(config)
        if not any(listener.enabled for listener in settings.listeners.values()):
            raise ConfigError([ConfigProblem(str(config), "listeners", "no listener is "
                                             "declared (or all are disabled): nothing to run")])
        configure_logging(settings.logging)
        if workers > 1:
            raise typer.Exit(_supervise(config, workers, settings))
        application = Application(settings, source=str(config))
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    deadline = StopDeadline()  # armed at the signal; ends the process if the stop hangs
    try:
        code = run_process(application.run_until_signalled(deadline), grace=CANCEL_GRACE)
    except asyncio.CancelledError:
        err.print("forced stop: in-flight entries stay pending", markup=False)
        raise typer.Exit(EXIT_FORCED) from None
    except StartupError as exc:
        err.print(f"streamboot: cannot start: {exc}", markup=False)
        raise typer.Exit(EXIT_CANNOT_START) from None
    except ConfigError as exc:  # a handler that cannot be resolved
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    finally:
        deadline.cancel()
    if code == EXIT_CANNOT_START and application.failure is not None:
        # Every listener ended on an error no retry heals: at the start, or while running.
        when = "stopped" if application.announced else "cannot start"
        err.print(f"streamboot: {when}: {application.failure}", markup=False)
    raise typer.Exit(code)


def _supervise(config: Path, workers: int, settings: AppSettings) -> int:
    handlers = asyncio.run(handler_problems_of(settings, str(config)))
    if handlers:  # said once here, not once by each worker
        raise ConfigError(handlers)
    for name, listener in settings.listeners.items():
        if listener.enabled and listener.ordering_key and listener.partitions == 1:
            logger.warning("listeners.{}: ordering_key holds within each worker only: all {} "
                           "workers read its one stream; partition it to keep each key's "
                           "order across workers (docs/scaling.md)", name, workers)
    try:
        return asyncio.run(Supervisor(config, workers, settings).run())
    except StartupError as exc:
        err.print(f"streamboot: cannot start: {exc}", markup=False)
        return EXIT_CANNOT_START


def check(config_arg: ConfigArg = None, config_option: ConfigOption = None) -> None:
    """Check the file, its handlers and Redis; exit 2 on problems."""
    config = _app_file(config_arg, config_option)
    _import_from_cwd()
    settings, problems = asyncio.run(check_application(config))
    if problems:
        print_problems(ConfigError(problems))
        raise typer.Exit(EXIT_CONFIG)
    assert settings is not None
    listeners = len(settings.listeners)
    out.print(f"OK {config}: {listeners} listener{'' if listeners == 1 else 's'}, "
              f"redis {settings.redis.safe_url}", markup=False)
