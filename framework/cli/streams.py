"""The operator's stream commands: status, pending, publish, replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..config.durations import parse_duration
from ..config.models import AppSettings, ListenerSettings
from ..errors import NotFound, UsageError
from ..jobs.clock import SystemClock
from ..jobs.rotation import RotationPolicy
from ..observability.stream_views import StreamView, stream_view
from ..partitions.keys import members_key, partition_keys, partitions_of
from ..publisher import Publisher
from ..wire.hash_slots import colocated
from ..wire.operator import RedisOperator
from ..wire.records import PendingEntry
from .common import (
    USAGE,
    ConfigOption,
    JsonOption,
    UrlOption,
    as_json,
    count,
    entry_id,
    fail,
    out,
    partitioned,
    printable,
    with_redis,
)
from .replay import apply_replay, plan_replay


def configured_streams(settings: AppSettings) -> list[str]:
    """Every stream of the file: plain ones and their DLQs, each rotated period (and its
    DLQ) that may be alive now (the caller shows only those that exist, and the current
    period), each partition."""
    keys: list[str] = []
    now = SystemClock().now()
    for listener in _plain_listeners(settings):
        if listener.rotation is not None:
            for period in RotationPolicy(listener.rotation).live_periods(now):
                keys += [period.key, colocated(period.key, ":dlq")]
        else:
            keys.append(listener.stream)
            if listener.dead_letter_stream:
                keys.append(listener.dead_letter_stream)
    return list(dict.fromkeys(keys))


def _plain_listeners(settings: AppSettings) -> list[ListenerSettings]:
    """Every listener of the file, each partition of a partitioned one as its own."""
    return [part for listener in settings.listeners.values()
            for part in partitions_of(listener)]


def _current_periods(settings: AppSettings) -> set[str]:
    now = SystemClock().now()
    return {RotationPolicy(ls.rotation).current(now).key
            for ls in _plain_listeners(settings) if ls.rotation is not None}


def _partitioned(settings: AppSettings | None) -> list[tuple[str, ListenerSettings]]:
    if settings is None:
        return []
    return [(name, listener) for name, listener in settings.listeners.items()
            if listener.partitions > 1 and listener.rotation is None]


async def _members(operator: RedisOperator, settings: AppSettings | None,
                   ) -> dict[str, list[str]]:
    """Each partitioned listener's live members (their heartbeats), standbys included."""
    return {name: await operator.leases.members(members_key(listener.stream, listener.group))
            for name, listener in _partitioned(settings)}


def _totals(settings: AppSettings | None, views: list[StreamView],
            members: dict[str, list[str]]) -> list[Text]:
    """One line per partitioned listener: its partitions' entries, lag and pending summed
    (per partition, the tables above), then each live member with the partitions it owns
    (``standby``: none)."""
    if settings is None:
        return []
    by_key = {view.key: view for view in views}
    lines = []
    for name, listener in _partitioned(settings):
        keys = partition_keys(listener)
        found = [by_key[key] for key in keys if key in by_key]
        groups = [g for view in found for g in view.groups if g.name == listener.group]
        lag = ("?" if any(g.lag is None for g in groups)
               else str(sum(g.lag or 0 for g in groups)))
        entries = count(sum(view.length for view in found), "entry", "entries")
        lines.append(Text(
            f"{printable(name)} ({printable(listener.stream)}, {listener.partitions} "
            f"partitions): {entries}; group {printable(listener.group)}: lag {lag}, pending "
            f"{sum(g.pending for g in groups)}"))
        owned: dict[str, list[str]] = {}
        for index, key in enumerate(keys):
            lease = by_key[key].lease if key in by_key else None
            if lease is not None and lease.owner is not None:
                owned.setdefault(lease.owner, []).append(f"p{index}")
        live = members.get(name, [])
        said = [f"{printable(m)} {','.join(owned[m]) if m in owned else 'standby'}"
                for m in live]
        said += [f"{printable(m)} {','.join(ps)} (no heartbeat)"
                 for m, ps in sorted(owned.items()) if m not in live]
        lines.append(Text(f"  members: {'; '.join(said) if said else 'none live'}"))
    return lines


def status(
    config_arg: Annotated[Path | None, typer.Argument(
        metavar="CONFIG", help="Application file (its streams); same as --config.")] = None,
    stream: Annotated[list[str] | None, typer.Option(help="A stream key (repeatable).")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
    json_: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh every 2s.")] = False,
) -> None:
    """Streams: length, ids, memory, each group's lag, pending, consumers.

    Of the application file's streams (each rotated period that exists, and the current
    one), or of the --stream keys."""
    config = config or config_arg

    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        keys = [key for name in stream or [] for key in partitioned(settings, name) or [name]]
        periods: set[str] = set()  # past periods: shown only while they exist
        if not keys and settings is not None:
            keys = configured_streams(settings)
            plain = {ls.stream for ls in _plain_listeners(settings) if ls.rotation is None}
            dead = {ls.dead_letter_stream for ls in _plain_listeners(settings)}
            periods = set(keys) - plain - dead - _current_periods(settings)
        if not keys:
            raise UsageError("give an application file (--config) or --stream")

        async def views() -> list[StreamView]:
            found = [await stream_view(operator, key, leases=True) for key in keys]
            return [v for v in found if v.exists or v.key not in periods]

        async def totals_of(found: list[StreamView]) -> list[Text]:
            return _totals(totals, found, await _members(operator, totals))

        totals = settings if not stream else None
        if watch:
            with Live(console=out, auto_refresh=False) as live:
                while True:
                    found = await views()
                    live.update(Group(*(_table(v) for v in found),
                                      *await totals_of(found)), refresh=True)
                    await asyncio.sleep(2)
        shown = await views()
        if json_:
            as_json([v.as_dict() for v in shown])
            return
        for view in shown:
            out.print(_table(view))
        for line in await totals_of(shown):
            out.print(line)

    if watch and json_:
        fail(USAGE, "--watch shows tables; --json prints one snapshot (drop one of them)")
    # How --watch ends: Ctrl-C is the way out, not an error.
    with_redis(config, url, job, interrupted=0 if watch else 130)


def _table(view: StreamView) -> Table | Text:
    if not view.exists:
        return Text(f"{printable(view.key)}: no such stream")
    memory = f"{view.memory_bytes / 1024:.1f} KiB" if view.memory_bytes is not None else "?"
    span = (f"first {view.first_id}, last {view.last_id}" if view.length
            else f"last id {view.last_id or '0-0'}")
    entries = count(view.length, "entry", "entries")
    lease = view.lease
    owner = ("" if lease is None else
             f"\nlease: free (epoch {lease.epoch})" if lease.owner is None else
             f"\nlease: {printable(lease.owner)}, epoch {lease.epoch}, held "
             f"{lease.held_for_s:.1f}s, expires in {lease.expires_in_s:.1f}s")
    table = Table(title=f"{printable(view.key)}: {entries}, {span}, {memory}{owner}",
                  title_justify="left")
    for column in ("group", "consumer", "lag", "pending", "oldest pending idle",
                   "consumer idle"):
        table.add_column(column, no_wrap=True)
    for group in view.groups:
        oldest = (f"{group.oldest_pending_idle_ms / 1000:.1f}s"
                  if group.oldest_pending_idle_ms is not None else "-")
        lag = "?" if group.lag is None else str(group.lag)
        table.add_row(printable(group.name), "", lag, str(group.pending), oldest, "")
        for consumer in group.consumers:
            table.add_row("", printable(consumer.name), "", str(consumer.pending), "",
                          f"{consumer.idle_ms / 1000:.1f}s")
    return table


def pending(
    stream: Annotated[str, typer.Argument(metavar="STREAM")],
    group: Annotated[str, typer.Argument(metavar="GROUP")],
    consumer: Annotated[str | None, typer.Option(help="Only this consumer's entries.")] = None,
    min_idle: Annotated[str, typer.Option(help="Only entries idle this long (e.g. 30s).")] = "0s",
    limit: Annotated[int, typer.Option("--count", min=1, help="At most this many rows.")] = 100,
    config: ConfigOption = None,
    url: UrlOption = None,
    json_: JsonOption = False,
) -> None:
    """Pending entries: owner, idle time, deliveries.

    With the application file, STREAM may be a partitioned listener's `stream`: every
    partition's entries, with a partition column."""
    try:
        idle = parse_duration(min_idle)
    except ValueError as exc:
        fail(USAGE, f"--min-idle: {exc}")

    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        keys = partitioned(settings, stream) or [stream]
        rows: list[tuple[str, PendingEntry]] = []
        for key in keys:
            if not await operator.group_exists(key, group):
                if len(keys) == 1:
                    raise NotFound(f"stream {key!r} has no group {group!r}")
                continue  # a partition nothing was written to yet
            found = await operator.pending_range(key, group, consumer=consumer,
                                                 min_idle=idle if idle > timedelta(0) else None,
                                                 count=limit)
            rows += [(key, row) for row in found]
        rows = rows[:limit]
        if json_:
            as_json([{"id": r.id, "consumer": r.consumer, "idle_ms": r.idle_ms,
                      "deliveries": r.deliveries, **({"stream": key} if len(keys) > 1 else {})}
                     for key, r in rows])
            return
        shown = count(len(rows), "pending entry", "pending entries")
        where = f"{stream} ({len(keys)} partitions)" if len(keys) > 1 else stream
        table = Table(title=f"{where} / {group}: {shown} shown", title_justify="left")
        if len(keys) > 1:
            table.add_column("partition", no_wrap=True)
        table.add_column("id", no_wrap=True,
                         min_width=max((len(r.id) for _, r in rows), default=2))
        for column in ("consumer", "idle", "deliveries"):
            table.add_column(column, no_wrap=True)
        for key, row in rows:
            cells = [row.id, printable(row.consumer), f"{row.idle_ms / 1000:.1f}s",
                     str(row.deliveries)]
            table.add_row(*([printable(key)] if len(keys) > 1 else []), *cells)
        out.print(table)

    with_redis(config, url, job)


def publish(
    stream: Annotated[str, typer.Argument(metavar="STREAM")],
    fields: Annotated[list[str], typer.Argument(metavar="KEY=VALUE", help="The fields.")],
    config: ConfigOption = None,
    url: UrlOption = None,
    json_: JsonOption = False,
) -> None:
    """XADD one entry (for manual tests).

    With the application file, STREAM may be a listener's `stream`: the entry goes where
    the listener's Publisher would send it — the current period's stream, the partition
    its fields route it to — under its backpressure and `publish.durability` (exit 3 when
    too few replicas acknowledged it in time; it is written)."""
    pairs = dict(_pair(f) for f in fields)

    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        # The listener's own Publisher: its period, partition, backpressure and durability.
        routed = [ls for ls in (settings.listeners.values() if settings else ())
                  if ls.stream == stream]
        if routed:
            entry = await Publisher.for_listener(operator, routed[0]).publish_fields(pairs)
            key, new_id = entry.stream, str(entry)
        else:
            key, new_id = stream, await operator.xadd(stream, pairs)
        if json_:
            as_json({"stream": key, "id": new_id})
        elif key != stream:
            what = ("a partition" if routed[0].rotation is None
                    else "the current period" if routed[0].partitions == 1
                    else "a partition of the current period")
            out.print(f"{new_id} (in {key}, {what} of {stream})", markup=False)
        else:
            out.print(new_id, markup=False)

    with_redis(config, url, job)


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        fail(USAGE, f"expected key=value, got {text!r}")
    return key, value


def replay(
    stream: Annotated[str, typer.Argument(metavar="STREAM", help="The stream key.")],
    group: Annotated[str, typer.Argument(metavar="GROUP", help="The consumer group.")],
    from_id: Annotated[str, typer.Option("--from", metavar="ID",
                                         help="First entry id to deliver again.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do it (otherwise: only show).")] = False,
    config: ConfigOption = None,
    url: UrlOption = None,
    json_: JsonOption = False,
) -> None:
    """Deliver a group's entries again from an id.

    XGROUP SETID to the entry before --from; only shows what it would do without --yes."""
    first = entry_id(from_id)

    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        plan = await plan_replay(operator, stream, group, first)
        if yes:
            await apply_replay(operator, plan)
        if json_:
            as_json({"stream": plan.stream, "group": plan.group, "from": first,
                     "last_delivered": plan.current, "set_to": plan.target,
                     "entries": plan.entries, "more": plan.more, "done": yes})
            return
        out.print(f"{'moved' if yes else 'would move'} {plan.describe()}", markup=False)
        if not yes:
            out.print("nothing changed: add --yes to do it", markup=False)

    with_redis(config, url, job)
