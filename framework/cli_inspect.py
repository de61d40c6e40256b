"""The operator's commands: status, pending, dlq list|show|replay|purge, publish."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from framework.client import build_client
from framework.clock import SystemClock
from framework.config.durations import parse_duration
from framework.config.loader import load_settings
from framework.config.models import AppSettings, RedisSettings
from framework.dead_letters import list_dead_letters, purge, replay
from framework.inspect_streams import StreamView, stream_view
from framework.lifecycle.rotation import RotationPolicy
from framework.operator import RedisOperator

out = Console(highlight=False)
UrlOption = Annotated[str, typer.Option(envvar="REDIS_URL", help="Redis URL (or REDIS_URL).")]
DEFAULT_URL = "redis://127.0.0.1:6379/0"
dlq_app = typer.Typer(help="Dead-letter streams: list, show, replay, purge.",
                      no_args_is_help=True)


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[RedisOperator]:
    client = build_client(RedisSettings(url=url))
    try:
        yield RedisOperator(client)
    finally:
        await client.aclose()


def run_async(job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(job())


def configured_streams(settings: AppSettings) -> list[str]:
    """Every stream of the file: plain ones, each rotated period alive now, their DLQs."""
    keys: list[str] = []
    now = SystemClock().now()
    for listener in settings.listeners.values():
        if listener.rotation is not None:
            keys += [p.key for p in RotationPolicy(listener.rotation).live_periods(now)]
        else:
            keys.append(listener.stream)
            if listener.dead_letter_stream:
                keys.append(listener.dead_letter_stream)
    return list(dict.fromkeys(keys))


def status(
    config: Annotated[Path | None, typer.Argument(help="Application file (its streams).")] = None,
    stream: Annotated[list[str] | None, typer.Option(help="A stream key (repeatable).")] = None,
    url: UrlOption = DEFAULT_URL,
    as_json: Annotated[bool, typer.Option("--json", help="JSON for scripts.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every 2s.")] = False,
) -> None:
    """Length, ids, memory, and each group's lag, pending and consumers."""
    keys = list(stream or [])
    if config is not None:
        settings = load_settings(config)
        keys += configured_streams(settings)
        url = url if url != DEFAULT_URL else settings.redis.url
    if not keys:
        raise typer.BadParameter("give an application file or --stream")

    async def job() -> None:
        async with connect(url) as operator:
            if watch:
                with Live(console=out, auto_refresh=False) as live:
                    while True:
                        views = [await stream_view(operator, k) for k in keys]
                        live.update(Group(*(_table(v) for v in views)), refresh=True)
                        await asyncio.sleep(2)
            views = [await stream_view(operator, k) for k in keys]
            if as_json:
                out.print_json(json.dumps([v.as_dict() for v in views]))
            else:
                for view in views:
                    out.print(_table(view))

    run_async(job)


def _table(view: StreamView) -> Table | Text:
    if not view.exists:
        return Text(f"{view.key}: no such stream")
    memory = f"{view.memory_bytes / 1024:.1f} KiB" if view.memory_bytes is not None else "?"
    table = Table(title=f"{view.key}: {view.length} entries, first {view.first_id}, "
                        f"last {view.last_id}, {memory}", title_justify="left")
    for column in ("group", "consumer", "lag", "pending", "oldest pending idle",
                   "consumer idle"):
        table.add_column(column)
    for group in view.groups:
        oldest = (f"{group.oldest_pending_idle_ms / 1000:.1f}s"
                  if group.oldest_pending_idle_ms is not None else "-")
        table.add_row(group.name, "", str(group.lag), str(group.pending), oldest, "")
        for consumer in group.consumers:
            table.add_row("", consumer.name, "", str(consumer.pending), "",
                          f"{consumer.idle_ms / 1000:.1f}s")
    return table


def pending(
    stream: Annotated[str, typer.Argument()],
    group: Annotated[str, typer.Argument()],
    consumer: Annotated[str | None, typer.Option(help="Only this consumer's entries.")] = None,
    min_idle: Annotated[str, typer.Option(help="Only entries idle this long (e.g. 30s).")] = "0s",
    count: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Pending entries with their owner, idle time and delivery count."""
    idle = parse_duration(min_idle)

    async def job() -> None:
        async with connect(url) as operator:
            rows = await operator.pending_range(stream, group, consumer=consumer,
                                                min_idle=idle if idle > timedelta(0) else None,
                                                count=count)
        table = Table(title=f"{stream} / {group}: {len(rows)} pending shown")
        for column in ("id", "consumer", "idle", "deliveries"):
            table.add_column(column)
        for row in rows:
            table.add_row(row.id, row.consumer, f"{row.idle_ms / 1000:.1f}s", str(row.deliveries))
        out.print(table)

    run_async(job)


def publish(
    stream: Annotated[str, typer.Argument()],
    fields: Annotated[list[str], typer.Argument(help="key=value pairs.")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """XADD one entry, for manual tests."""
    pairs = dict(_pair(f) for f in fields)

    async def job() -> None:
        async with connect(url) as operator:
            out.print(await operator.xadd(stream, pairs))

    run_async(job)


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"expected key=value, got {text!r}")
    return key, value


@dlq_app.command("list")
def dlq_list(dlq: Annotated[str, typer.Argument(help="The dead-letter stream key.")],
             count: int = 50, url: UrlOption = DEFAULT_URL) -> None:
    """The oldest dead letters: id, source, reason, error."""
    async def job() -> None:
        async with connect(url) as operator:
            entries = await list_dead_letters(operator, dlq, count)
        table = Table(title=f"{dlq}: {len(entries)} shown")
        for column in ("id", "from", "reason", "deliveries", "error"):
            table.add_column(column)
        for e in entries:
            f = e.fields
            table.add_row(e.id, f"{f.get('dlq_stream')} {f.get('dlq_id')}", f.get("dlq_reason", ""),
                          f.get("dlq_deliveries", ""), f.get("dlq_error", "")[:80])
        out.print(table)

    run_async(job)


@dlq_app.command("show")
def dlq_show(dlq: Annotated[str, typer.Argument()], entry_id: Annotated[str, typer.Argument()],
             url: UrlOption = DEFAULT_URL) -> None:
    """Every field of one dead letter."""
    async def job() -> None:
        async with connect(url) as operator:
            entry = await operator.read_entry(dlq, entry_id)
        if entry is None:
            out.print(f"[red]no entry {entry_id} in {dlq}[/red]")
            raise typer.Exit(2)
        out.print_json(json.dumps({"id": entry.id, **entry.fields}))

    run_async(job)


@dlq_app.command("replay")
def dlq_replay(dlq: Annotated[str, typer.Argument()],
               ids: Annotated[list[str] | None, typer.Argument(help="Dead-letter ids.")] = None,
               all_: Annotated[bool, typer.Option("--all", help="Replay every one.")] = False,
               url: UrlOption = DEFAULT_URL) -> None:
    """Publish the original fields back to their stream, then delete the dead letter."""
    if not all_ and not ids:
        raise typer.BadParameter("give dead-letter ids, or --all")

    async def job() -> None:
        async with connect(url) as operator:
            done = await replay(operator, dlq, None if all_ else list(ids or []))
        for item in done:
            out.print(f"{item.dead_letter_id} -> {item.stream} {item.new_id}")
        out.print(f"replayed {len(done)}")

    run_async(job)


@dlq_app.command("purge")
def dlq_purge(dlq: Annotated[str, typer.Argument()],
              yes: Annotated[bool, typer.Option("--yes", help="Really delete.")] = False,
              url: UrlOption = DEFAULT_URL) -> None:
    """Delete the dead-letter stream (only with --yes)."""
    async def job() -> None:
        async with connect(url) as operator:
            if not yes:
                n = await operator.xlen(dlq) if await operator.exists(dlq) else 0
                out.print(f"would delete {dlq} with {n} dead letters: add --yes")
                return
            out.print(f"deleted {dlq}: {await purge(operator, dlq)} dead letters")

    run_async(job)


def register(app: Any) -> None:
    app.command()(status)
    app.command()(pending)
    app.command()(publish)
    app.add_typer(dlq_app, name="dlq")
