"""``streamboot console APP.yaml``: the web console (framework/console/), served by uvicorn
on loopback until Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError

from ..client import build_client, close_client
from ..config.durations import parse_duration
from ..config.models import AppSettings
from ..console import ConsoleSettings, console_app
from ..errors import ConfigError
from ..process.shutdown import EXIT_CONFIG
from ..wire.operator import RedisOperator
from ..wire.redis_errors import describe_unavailable
from .common import (
    REDIS,
    USAGE,
    ConfigOption,
    UrlOption,
    err,
    fail,
    out,
    print_problems,
    settings_for,
)
from .run import ConfigArg

TOKEN_VARIABLE = "STREAMBOOT_CONSOLE_TOKEN"
_OPTIONS = {"prometheus_url": "prometheus", "token_given": "token"}
"""ConsoleSettings' fields whose option is named otherwise."""


def console(
    config_arg: ConfigArg = None,
    config_option: ConfigOption = None,
    url: UrlOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on (a non-loopback one "
                                           "needs --token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 8089,
    token: Annotated[str | None, typer.Option(
        envvar=TOKEN_VARIABLE, show_envvar=True,
        help="What signing in takes (at least 16 characters); default: one made up "
             "and printed.")] = None,
    prometheus: Annotated[str | None, typer.Option(
        metavar="URL", help="Read the charts from this Prometheus instead of sampling.")]
        = None,
    sample_every: Annotated[str, typer.Option(
        metavar="DURATION", help="How often the console samples its charts.")] = "5s",
    history: Annotated[str, typer.Option(
        metavar="DURATION", help="How far back the charts go.")] = "1h",
    dead_letters_shown: Annotated[int, typer.Option(
        help="Dead letters listed per dead-letter stream (replay and purge of all "
             "matching reach every one).")] = 200,
) -> None:
    """A web console of the file's listeners: lag, pending, consumers, owners, charts,
    dead letters to replay or purge.

    Reading needs nothing on loopback; replay and purge need the token (sign in)."""
    config = config_arg or config_option
    if config is None:
        fail(USAGE, "give the application file: streamboot console app.yaml (or --config, "
                    "STREAMBOOT_CONFIG)")
    durations = {}
    for option, text in (("--sample-every", sample_every), ("--history", history)):
        try:
            durations[option] = parse_duration(text)
        except ValueError as exc:
            fail(USAGE, f"{option}: {exc}")
    try:
        settings = ConsoleSettings(
            host=host, port=port, token=token or secrets.token_urlsafe(24),
            token_given=token is not None, prometheus_url=prometheus,
            sample_every=durations["--sample-every"], history=durations["--history"],
            dead_letters_shown=dead_letters_shown)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        option = _OPTIONS.get(where, where.replace("_", "-"))
        fail(USAGE, f"{'--' + option + ': ' if option else ''}{problem['msg']}"
             .replace("Value error, ", ""))
    try:
        redis, loaded = settings_for(config, url)
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_CONFIG) from None
    assert loaded is not None
    app_settings = loaded.model_copy(update={"redis": redis})
    reason = asyncio.run(_unreachable(app_settings))
    if reason is not None:
        fail(REDIS, reason)
    try:
        listening = socket.create_server((settings.host, settings.port))
    except OSError as exc:
        fail(USAGE, f"the console cannot listen on {settings.host}:{settings.port}: "
                    f"{exc.strerror or exc} (--port 0 picks a free one)")
    assert settings.token is not None
    app = console_app(app_settings, settings, settings.token)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           access_log=False))
    # Ctrl-C and SIGTERM are how it is meant to end: exit 0 once uvicorn has stopped (it
    # hands the signal back to the handlers that were there before it: these). Set before
    # the address is printed: a signal sent as soon as it is read finds them.
    signal.signal(signal.SIGTERM, _stopped)
    with contextlib.suppress(KeyboardInterrupt):  # from here on, a signal is a clean stop
        bound = listening.getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        out.print(f"console of {app_settings.application.name} on "
                  f"http://{shown}:{bound[1]}/", markup=False)
        if token is None:
            err.print(f"replay and purge need signing in with this token (made up for this "
                      f"run; set {TOKEN_VARIABLE} to keep one): {settings.token}",
                      markup=False)
        os.environ.pop(TOKEN_VARIABLE, None)  # not inherited by anything it may start
        asyncio.run(server.serve(sockets=[listening]))
    out.print("console stopped", markup=False)


def _stopped(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _unreachable(settings: AppSettings) -> str | None:
    """Why Redis cannot be reached, in one line (None when it answers)."""
    client = build_client(settings.redis)
    operator = RedisOperator(client)
    try:
        await asyncio.wait_for(operator.ping(), 5)
        return None
    except Exception as exc:
        return describe_unavailable(exc, operator.address)
    finally:
        await close_client(client)
