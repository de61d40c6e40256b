"""``streamboot dlq list|show|replay|purge``: dead-letter streams, for people.

Dead letters are read exactly (``xrange_exact``): a field name given twice, names like
ours, bytes that are not UTF-8 are shown as they are stored (those bytes as ``\\xNN``).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..config.models import AppSettings
from ..errors import MalformedDeadLetter, NotFound, UsageError
from ..listener.dead_letters import (
    describe_match,
    distinct_ids,
    is_dead_letter_stream,
    matches,
    original_pairs,
    purge,
    replay,
    select_dead_letters,
)
from ..wire.hash_slots import colocated
from ..wire.operator import RedisOperator
from ..wire.records import StreamEntry
from .common import (
    USAGE,
    ConfigOption,
    JsonOption,
    UrlOption,
    as_json,
    count,
    entry_id,
    fail,
    listener_dlqs,
    out,
    printable,
    with_redis,
)

app = typer.Typer(help="Dead-letter streams: list, show, replay, purge.", no_args_is_help=True,
                  rich_markup_mode=None)
DlqArg = Annotated[str, typer.Argument(metavar="DLQ",
                                       help="The dead-letter stream key, e.g. '{orders}:dlq'.")]


def _view(entry: StreamEntry) -> dict[str, object]:
    """One dead letter: its own fields exactly (as pairs), then where and why."""
    original = original_pairs(entry)
    meta = entry.pairs[len(original):]
    return {"id": entry.id,
            "fields": [[printable(original[i]), printable(original[i + 1])]
                       for i in range(0, len(original), 2)],
            **{printable(meta[i]): printable(meta[i + 1]) for i in range(0, len(meta), 2)}}


async def _one_dlq(operator: RedisOperator, settings: AppSettings | None, dlq: str) -> None:
    """Commands that change a dead-letter stream take one partition's (or period's),
    named; given the listener's stream they refuse, naming those that exist."""
    keys = listener_dlqs(settings, dlq)
    if keys is None:
        return
    existing = [key for key in keys if await operator.exists(key)]
    shown = ", ".join(existing[:8]) + (f" … ({len(existing)} in all)"
                                       if len(existing) > 8 else "")
    raise UsageError(f"{dlq} has a dead-letter stream per partition or period "
                     f"({shown or 'none exists now'}): name one (`streamboot dlq list "
                     f"{dlq}` shows them)")


async def _check(operator: RedisOperator, dlq: str) -> bool:
    """Whether the dead-letter stream exists; a key that is not one is refused (exit 2)."""
    try:
        return await is_dead_letter_stream(operator, dlq)
    except MalformedDeadLetter as exc:
        raise UsageError(str(exc)) from None


@app.command("list")
def dlq_list(dlq: DlqArg,
             limit: Annotated[int, typer.Option("--count", min=1, help="At most this many.")] = 50,
             config: ConfigOption = None, url: UrlOption = None,
             json_: JsonOption = False) -> None:
    """The oldest dead letters: id, source, reason, deliveries, error.

    With the application file, DLQ may be a partitioned or rotated listener's `stream`:
    one table per partition's (and live period's) dead-letter stream."""
    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        keys = listener_dlqs(settings, dlq)
        listeners = settings.listeners.values() if settings is not None else ()
        rotated = keys is not None and any(ls.rotation is not None and dlq in (
            ls.stream, colocated(ls.stream, ":dlq")) for ls in listeners)
        if keys is None:
            await _check(operator, dlq)
            keys = [dlq]
        shown: list[tuple[str, list[StreamEntry] | None]] = []
        for key in keys:
            exists = await _check(operator, key)
            if exists or not rotated:  # a period's that was never made: not shown
                shown.append((key, await operator.xrange_exact(key, count=limit)
                              if exists else None))
        if not shown:
            out.print(f"{dlq}: no dead letters in any live period's dead-letter stream",
                      markup=False)
            return
        if json_:
            as_json([_view(e) for _, found in shown for e in found or []])
            return
        for key, found in shown:
            if found is None:  # an empty table would look like a stream with none in it
                out.print(f"{printable(key)}: no such stream (no dead letter was written "
                          "there yet, or it was purged)", markup=False)
            else:
                _print_list_table(key, found)

    with_redis(config, url, job)


_ERROR_MIN = 20
"""The error column's least width on a narrow terminal (the rest of it cut, ``…``)."""


def _print_list_table(dlq: str, entries: list[StreamEntry]) -> None:
    """id, from, reason and deliveries keep their full width whatever the output's width:
    they are what an operator copies (``dlq show ID``, ``--reason``). On a terminal only the
    error is cut, with an ellipsis, to fit; elsewhere (a pipe, a file, where rich would
    assume 80 columns and squeeze every column to nothing) nothing is cut."""
    rows = []
    for e in entries:
        f = e.fields
        rows.append((e.id, printable(f"{f.get('dlq_stream')} {f.get('dlq_id')}"),
                     printable(f.get("dlq_reason", "")), f.get("dlq_deliveries", ""),
                     printable(f.get("dlq_error", ""))))
    columns = ("id", "from", "reason", "deliveries", "error")
    widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(columns)]
    frame = 3 * len(columns) + 1  # each cell's padding and border, and the last border
    fixed = sum(widths[:-1]) + frame
    error = max(_ERROR_MIN, out.width - fixed) if out.is_terminal else widths[-1]
    table = Table(title=f"{dlq}: {count(len(entries), 'dead letter')} shown",
                  title_justify="left")
    for name, width in zip(columns[:-1], widths, strict=False):
        table.add_column(name, no_wrap=True, min_width=width)
    table.add_column("error", overflow="ellipsis", no_wrap=True,
                     max_width=max(error, len("error")))
    for row in rows:
        table.add_row(*row)
    width = max(fixed + min(error, widths[-1]), len(table.title or ""))
    if out.is_terminal:
        out.print(table, width=width)
    else:  # print(width=) is capped at the console's (80 on a pipe): a console this wide
        Console(file=out.file, width=width, highlight=False, soft_wrap=True).print(table)


@app.command("show")
def dlq_show(dlq: DlqArg,
             dead_letter: Annotated[str, typer.Argument(metavar="ID", help="Its id.")],
             config: ConfigOption = None, url: UrlOption = None) -> None:
    """One dead letter as JSON: its own fields exactly, then dlq_*."""
    wanted = entry_id(dead_letter)

    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        await _one_dlq(operator, settings, dlq)
        await _check(operator, dlq)
        found = await operator.xrange_exact(dlq, wanted, wanted, 1)
        if not found:
            raise NotFound(f"no dead letter {wanted} in {dlq}")
        as_json(_view(found[0]))

    with_redis(config, url, job)


@app.command("replay")
def dlq_replay(dlq: DlqArg,
               ids: Annotated[list[str] | None, typer.Argument(
                   metavar="ID", help="Dead-letter ids.")] = None,
               all_: Annotated[bool, typer.Option("--all", help="Replay every one.")] = False,
               reason: Annotated[str | None, typer.Option(
                   "--reason", help="Only dead letters with this dlq_reason "
                                    "(e.g. max_deliveries).")] = None,
               where: Annotated[list[str] | None, typer.Option(
                   "--where", metavar="FIELD=VALUE",
                   help="Only dead letters whose own field FIELD is VALUE (repeatable: "
                        "all must match).")] = None,
               config: ConfigOption = None, url: UrlOption = None,
               json_: JsonOption = False) -> None:
    """Publish dead letters back to their stream, then delete them.

    The original fields go back byte for byte. Every id must exist, or nothing is
    replayed. --reason and --where select by filter instead of ids (together: both)."""
    conditions = [_condition(text) for text in where or []]
    filtered = reason is not None or bool(conditions)
    if filtered and (all_ or ids):
        fail(USAGE, "--reason/--where select the dead letters themselves: give them without "
                    "ids or --all")
    if not all_ and not ids and not filtered:
        fail(USAGE, "give dead-letter ids, --all, or --reason/--where")
    wanted = None if all_ or filtered else distinct_ids(entry_id(i) for i in ids or [])

    def selected(entry: StreamEntry) -> bool:
        return matches(entry, reason, conditions)

    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        await _one_dlq(operator, settings, dlq)
        await _check(operator, dlq)
        if wanted is not None:
            missing = [i for i in wanted if not await operator.xrange_exact(dlq, i, i, 1)]
            if missing:
                raise NotFound(f"no dead letter {', '.join(missing)} in {dlq}: nothing replayed")
        if filtered and not await select_dead_letters(operator, dlq, selected):
            raise NotFound(f"no dead letter matches {describe_match(reason, conditions)} in "
                           f"{dlq}: nothing replayed")
        try:
            done = await replay(operator, dlq, wanted, selected if filtered else None)
        except ValueError as exc:  # an entry without dlq_stream: not a dead letter
            raise UsageError(str(exc)) from None
        if json_:
            as_json([{"dead_letter": d.dead_letter_id, "stream": d.stream, "id": d.new_id}
                     for d in done])
            return
        for item in done:
            out.print(f"{item.dead_letter_id} -> {item.stream} {item.new_id}", markup=False)
        out.print(f"replayed {count(len(done), 'dead letter')}", markup=False)

    with_redis(config, url, job)


def _condition(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        fail(USAGE, f"--where: expected FIELD=VALUE, got {text!r}")
    return name, value


@app.command("purge")
def dlq_purge(dlq: DlqArg,
              yes: Annotated[bool, typer.Option("--yes", help="Really delete.")] = False,
              config: ConfigOption = None, url: UrlOption = None,
              json_: JsonOption = False) -> None:
    """Delete the dead-letter stream (only with --yes)."""
    async def job(operator: RedisOperator, settings: AppSettings | None) -> None:
        await _one_dlq(operator, settings, dlq)
        exists = await _check(operator, dlq)
        if not yes:
            n = await operator.xlen(dlq) if exists else 0
            if json_:
                as_json({"stream": dlq, "dead_letters": n, "deleted": False})
            else:
                out.print(f"would delete {dlq} with {count(n, 'dead letter')}: add --yes",
                          markup=False)
            return
        n = await purge(operator, dlq)
        if json_:
            as_json({"stream": dlq, "dead_letters": n, "deleted": True})
        else:
            out.print(f"deleted {dlq}: {count(n, 'dead letter')}", markup=False)

    with_redis(config, url, job)

