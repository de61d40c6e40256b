"""What every ``streamboot`` command shares: where Redis is, how it connects, how an error
becomes one line and an exit code, how entries are printed.

Where Redis is: the application file (``--config``, or ``STREAMBOOT_CONFIG``) gives URL,
username, password, db and cluster exactly as ``run`` uses them; ``--url`` overrides the URL
alone; without a file, ``REDIS_URL`` or ``redis://127.0.0.1:6379/0``.

Exit codes of the admin commands (docs/operations.md):
:data:`OK` 0, :data:`NOT_FOUND` 1 (an id, a group or a dead letter that does not exist),
:data:`USAGE` 2 (a bad option, id, duration or file), :data:`REDIS` 3 (Redis unreachable,
authentication, a permission, a key of the wrong type).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from ..client import build_client, close_client
from ..config.loader import load_settings
from ..config.models import AppSettings, ListenerSettings, RedisSettings
from ..errors import (
    ConfigError,
    ConfigProblem,
    NoGroupError,
    NotDurableError,
    NotFound,
    PublishUnavailable,
    StreambootError,
    UsageError,
    WrongTypeError,
)
from ..jobs.clock import SystemClock
from ..jobs.rotation import RotationPolicy
from ..partitions.keys import partition_keys, partitions_of
from ..wire.decoding import to_wire
from ..wire.hash_slots import colocated
from ..wire.ids import is_id
from ..wire.operator import RedisOperator
from ..wire.redis_errors import (
    describe_permanent,
    describe_unavailable,
    from_redis,
    is_permanent,
    no_primary_found,
    refused,
    server_error_text,
    with_tls_hint,
)

OK, NOT_FOUND, USAGE, REDIS = 0, 1, 2, 3
DEFAULT_URL = "redis://127.0.0.1:6379/0"

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", envvar="STREAMBOOT_CONFIG", show_envvar=True,
    help="Application file: Redis URL, credentials, db and cluster as `run` uses them.")]
UrlOption = Annotated[str | None, typer.Option(
    "--url", help="Redis URL; overrides the file's (default: REDIS_URL, else "
                  "redis://127.0.0.1:6379/0).")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON for scripts.")]


def fail(code: int, message: str) -> NoReturn:
    err.print(f"streamboot: {message}", markup=False)
    raise typer.Exit(code)


def settings_for(config: Path | None, url: str | None) -> tuple[RedisSettings, AppSettings | None]:
    """The Redis settings a command uses, and the application file's settings if given."""
    settings = load_settings(config) if config is not None else None
    redis = settings.redis if settings is not None else RedisSettings(
        url=os.environ.get("REDIS_URL") or DEFAULT_URL)
    if url and redis.sentinel is not None:  # model_copy would not validate: say it here
        raise ConfigError([ConfigProblem(str(config), "redis.sentinel", (
            "--url cannot be used with redis.sentinel (this file finds the primary "
            "through Sentinel): drop --url, or use a file without redis.sentinel"))])
    if url:
        redis = redis.model_copy(update={"url": url})
    return redis, settings


def with_redis(config: Path | None, url: str | None,
               job: Callable[[RedisOperator, AppSettings | None], Awaitable[None]],
               interrupted: int = 130) -> None:
    """Run ``job`` against Redis; every routine error becomes one line and its exit code.
    Ctrl-C exits ``interrupted``: 130 (the shell's "killed by SIGINT") for a command cut
    short, 0 for one that runs until Ctrl-C by design (``status --watch``)."""
    try:
        redis, settings = settings_for(config, url)
    except ConfigError as exc:
        print_problems(exc)
        raise typer.Exit(USAGE) from None
    try:
        asyncio.run(_run(redis, settings, job))
    except typer.Exit:
        raise
    except NotFound as exc:
        fail(NOT_FOUND, str(exc))
    except NoGroupError as exc:
        fail(NOT_FOUND, str(exc))
    except (_RedisFailure, NotDurableError, PublishUnavailable) as exc:
        fail(REDIS, str(exc))
    except StreambootError as exc:  # Usage, and the framework's own refusals
        fail(USAGE, str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(interrupted) from None


class _RedisFailure(Exception):
    pass


async def _run(redis: RedisSettings, settings: AppSettings | None,
               job: Callable[[RedisOperator, AppSettings | None], Awaitable[None]]) -> None:
    client = build_client(redis)
    operator = RedisOperator(client)
    try:
        await job(operator, settings)
    except WrongTypeError as exc:
        raise _RedisFailure(str(exc)) from None
    except Exception as exc:
        if refused(exc):
            text = server_error_text(exc)
            if "Invalid stream ID" in text or "Invalid start ID" in text or "invalid ID" in text:
                raise UsageError(f"not a stream entry id ({text})") from None
            if is_permanent(exc):
                raise _RedisFailure(describe_permanent(exc, operator.address)) from None
            raise _RedisFailure(f"redis refused: {text}") from None
        if not from_redis(exc):
            raise
        if no_primary_found(exc) and (wrong := await operator.unknown_primary_name()):
            raise _RedisFailure(wrong) from None
        text = (describe_permanent(exc, operator.address) if is_permanent(exc)
                else with_tls_hint(describe_unavailable(exc, operator.address),
                                   redis.tls_without_client_cert))
        raise _RedisFailure(text) from None
    finally:
        await close_client(client)


def print_problems(exc: ConfigError) -> None:
    err.print(f"{count(len(exc.problems), 'problem')}:", markup=False)
    for problem in exc.problems:
        err.print(f"  {problem}", markup=False)


def entry_id(text: str) -> str:
    """A stream entry id as given on the command line (``<ms>`` or ``<ms>-<seq>``)."""
    if not is_id(text):
        fail(USAGE, f"{text!r} is not a stream entry id (expected <ms>-<seq>, such as "
                    "1700000000000-0)")
    return text


def printable(text: str) -> str:
    """Text as it can be shown: bytes that are not UTF-8 as ``\\xNN`` (never a crash)."""
    return to_wire(text).decode("utf-8", "backslashreplace")


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 entry``, ``2 entries``."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def as_json(value: Any) -> None:
    """Valid JSON whatever Redis held: every string made printable (``\\xNN`` for bytes
    that are not UTF-8, in names as in values)."""
    import json

    out.print_json(json.dumps(_printable_tree(value)))


def _printable_tree(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_printable_tree(k): _printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable_tree(v) for v in value]
    return value


def partitioned(settings: AppSettings | None, name: str) -> list[str] | None:
    """The partition keys when ``name`` is a partitioned listener's ``stream`` in the
    application file: the commands that take a stream then cover each partition."""
    for listener in settings.listeners.values() if settings is not None else ():
        if listener.partitions > 1 and listener.stream == name:
            return partition_keys(listener)
    return None


def listener_dlqs(settings: AppSettings | None, name: str) -> list[str] | None:
    """The dead-letter streams behind ``name`` when it is a partitioned or rotated
    listener's ``stream`` (or what its dead-letter stream would be otherwise,
    ``{orders}:dlq``): each partition's, and for a rotated listener each live period's
    (the caller shows those that exist). None for any other name."""
    for listener in settings.listeners.values() if settings is not None else ():
        if (listener.partitions > 1 or listener.rotation is not None) and name in (
                listener.stream, colocated(listener.stream, ":dlq")):
            return dead_letter_streams(listener)
    return None


def dead_letter_streams(listener: ListenerSettings) -> list[str]:
    """Where a listener's dead letters may be: its dead-letter stream, each partition's,
    each live period's (of each partition)."""
    found: list[str] = []
    now = SystemClock().now()
    for part in partitions_of(listener):
        if part.rotation is None:
            if part.dead_letter_stream is not None:
                found.append(part.dead_letter_stream)
            continue
        found += [colocated(p.key, ":dlq")
                  for p in RotationPolicy(part.rotation).live_periods(now)]
    return found
