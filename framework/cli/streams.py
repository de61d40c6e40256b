"""The operator's stream commands: status, pending, publish, replay."""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime, timedelta
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
from .replay import ReplayPlan, apply_replay, plan_partitions, plan_replay


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


NOT_CREATED = "not created yet (no consumer has started)"


def _expected_groups(settings: AppSettings | None) -> dict[str, set[str]]:
    """Per stream key of the file, the groups its listeners read it with: ``status`` says
    of one that does not exist that it was not created yet, rather than showing nothing
    (or a lag of 0) for it."""
    expected: dict[str, set[str]] = {}
    now = SystemClock().now()
    for listener in _plain_listeners(settings) if settings is not None else []:
        keys = ([p.key for p in RotationPolicy(listener.rotation).live_periods(now)]
                if listener.rotation is not None else [listener.stream])
        for key in keys:
            expected.setdefault(key, set()).add(listener.group)
    return expected


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
        state = (f"lag {lag}, pending {sum(g.pending for g in groups)}" if groups
                 else NOT_CREATED)  # "lag 0" would say it is drained: nothing read it yet
        lines.append(Text(
            f"{printable(name)} ({printable(listener.stream)}, {listener.partitions} "
            f"partitions): {entries}; group {printable(listener.group)}: {state}"))
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

        async def snapshot() -> Group:
            found = await views()
            return Group(*(_table(v, expected.get(v.key)) for v in found),
                         *await totals_of(found))

        totals = settings if not stream else None
        expected = _expected_groups(settings)
        if watch and out.is_terminal:
            with Live(console=out, auto_refresh=False) as live:
                while True:
                    live.update(await snapshot(), refresh=True)
                    await asyncio.sleep(2)
        while watch:  # not a terminal: Live would write only at exit; a snapshot each time
            shown = await snapshot()
            out.print(f"-- {datetime.now().astimezone():%Y-%m-%d %H:%M:%S %z} --",
                      markup=False)
            out.print(shown)
            out.file.flush()
            await asyncio.sleep(2)
        if json_:
            as_json([v.as_dict() for v in await views()])
            return
        out.print(await snapshot())

    if watch and json_:
        fail(USAGE, "--watch shows tables; --json prints one snapshot (drop one of them)")
    # How --watch ends: Ctrl-C is the way out, not an error — and so is SIGTERM (a
    # supervisor's, `timeout`'s, a script's kill): the same KeyboardInterrupt, exit 0.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if watch else None
    try:
        with_redis(config, url, job, interrupted=0 if watch else 130)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _table(view: StreamView, expected: set[str] | None = None) -> Table | Text:
    """``expected``: the groups the file's listeners read this stream with."""
    if not view.exists:
        return Text(f"{printable(view.key)}: no such stream")
    missing = sorted((expected or set()) - {group.name for group in view.groups})
    memory = f"{view.memory_bytes / 1024:.1f} KiB" if view.memory_bytes is not None else "?"
    span = (f"first {view.first_id}, last {view.last_id}" if view.length
            else f"last id {view.last_id or '0-0'}")
    entries = count(view.length, "entry", "entries")
    lease = view.lease
    owner = ("" if lease is None else
             f"\nlease: free (epoch {lease.epoch})" if lease.owner is None else
             f"\nlease: {printable(lease.owner)}, epoch {lease.epoch}, held "
             f"{lease.held_for_s:.1f}s, expires in {lease.expires_in_s:.1f}s")
    owner += "".join(f"\ngroup {printable(name)}: {NOT_CREATED}" for name in missing)
    table = Table(title=f"{printable(view.key)}: {entries}, {span}, {memory}{owner}",
                  title_justify="left")
    rows: list[tuple[str, ...]] = []
    for group in view.groups:
        oldest = (f"{group.oldest_pending_idle_ms / 1000:.1f}s"
                  if group.oldest_pending_idle_ms is not None else "-")
        lag = "?" if group.lag is None else str(group.lag)
        rows.append((printable(group.name), "", lag, str(group.pending), oldest, ""))
        rows += [("", printable(consumer.name), "", str(consumer.pending), "",
                  f"{consumer.idle_ms / 1000:.1f}s") for consumer in group.consumers]
    columns = ("group", "consumer", "lag", "pending", "oldest pending idle", "consumer idle")
    for index, column in enumerate(columns):
        # Names and numbers whole, however narrow the output (a pipe is 80 columns): a
        # group or consumer name cut to "order-…" names nothing one can type.
        width = max([len(column), *(len(row[index]) for row in rows)])
        table.add_column(column, no_wrap=True, min_width=width)
    for row in rows:
        table.add_row(*row)
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
        with_group = [key for key in keys if await operator.group_exists(key, group)]
        if not with_group and len(keys) == 1:
            raise NotFound(f"stream {stream!r} has no group {group!r}")
        if not with_group:  # not "0 shown": a mistyped group must not look like an idle one
            raise NotFound(f"consumer group {group!r} does not exist on any of the "
                           f"{len(keys)} partitions of {stream!r}")
        for key in with_group:  # a partition without it: nothing was read there yet
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
        keys = partitioned(settings, stream)
        if keys is not None:
            await _replay_partitions(operator, stream, keys, group, first, yes, json_)
            return
        plan = await plan_replay(operator, stream, group, first)
        if yes:
            await apply_replay(operator, plan)
        if json_:
            as_json(_plan_dict(plan, first, yes))
            return
        out.print(f"{'moved' if yes else 'would move'} {plan.describe()}", markup=False)
        if not yes:
            out.print("nothing changed: add --yes to do it", markup=False)

    with_redis(config, url, job)


def _plan_dict(plan: ReplayPlan, first: str, done: bool) -> dict[str, object]:
    return {"stream": plan.stream, "group": plan.group, "from": first,
            "last_delivered": plan.current, "set_to": plan.target, "entries": plan.entries,
            "more": plan.more, "done": done and not plan.ahead}


async def _replay_partitions(operator: RedisOperator, stream: str, keys: list[str],
                             group: str, first: str, yes: bool, json_: bool) -> None:
    """A partitioned listener's replay: each partition whose group exists moves back, one
    line each, then the total; the partitions that have nothing to deliver again (or no
    group yet) are said and left as they are, rather than refusing the others."""
    plans = await plan_partitions(operator, stream, keys, group, first)
    moving = [plan for plan in plans if isinstance(plan, ReplayPlan) and not plan.ahead]
    if yes:
        for plan in moving:
            await apply_replay(operator, plan)
    if json_:
        as_json([_plan_dict(plan, first, yes) | {"skipped": "ahead" if plan.ahead else None}
                 if isinstance(plan, ReplayPlan) else
                 {"stream": plan, "group": group, "from": first, "done": False,
                  "skipped": "no group"} for plan in plans])
        return
    for each in plans:
        if isinstance(each, str):
            out.print(f"{each}: no group {group!r} yet (no consumer read it): skipped",
                      markup=False)
        elif each.ahead:
            out.print(each.describe(), markup=False)
        else:
            out.print(f"{'moved' if yes else 'would move'} {each.describe()}", markup=False)
    entries = sum(plan.entries for plan in moving)
    more = "+" if any(plan.more for plan in moving) else ""
    noun = "entry" if entries == 1 and not more else "entries"
    out.print(f"{stream} ({len(keys)} partitions): {'moved' if yes else 'would move'} "
              f"{len(moving)} of {len(keys)}; {entries}{more} {noun} "
              f"{'will be' if yes else 'would be'} delivered again", markup=False)
    if not yes and moving:
        out.print("nothing changed: add --yes to do it", markup=False)
