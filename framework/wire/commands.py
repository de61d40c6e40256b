"""The stream commands of the hot path as argument tuples, and the replies as entries: the
one place that knows what Redis is sent and what comes back.

The poll loop's reader writes these tuples onto its own connection and reads the raw
replies; the RedisOperator sends the same tuples through redis-py pipelines. So an XACK with
its idempotency markers (SET before XACK: never an ack without its marker) is built
once, an XREADGROUP once, and each reply shape is parsed by one function here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from ..config.durations import to_ms
from .records import StreamEntry

Command = tuple[str | int, ...]


def ack_commands(key: str, group: str, ids: Sequence[str], markers: Sequence[str],
                 marker_ttl: timedelta | None) -> list[Command]:
    """SET (PX ttl) each idempotency marker to "1 <entry id>" (handled), then XACK the ids:
    in this order, so an entry is never acknowledged without its marker.

    ``markers`` are ``"<marker>\n<entry id>"`` (listener/acks.py): the value names the
    entry, so that a marker whose ack never took — set on a primary that never delivered
    the entry, after a failover — does not make that node skip the entry itself (see
    :func:`marker_says_handled`)."""
    commands: list[Command] = []
    ttl = to_ms(marker_ttl) if marker_ttl else None
    for item in markers:
        marker, newline, entry_id = item.rpartition("\n")
        marker, value = (marker, f"1 {entry_id}") if newline else (entry_id, "1")
        # Not NX: it turns an IdempotentScript's "2" (applied) into "1 …" (handled).
        commands.append(("SET", marker, value, "PX", ttl) if ttl else ("SET", marker, value))
    if ids:
        commands.append(("XACK", key, group, *ids))
    return commands


def read_command(key: str, group: str, consumer: str, *, count: int | None,
                 block: timedelta | None, entry_id: str) -> Command:
    """XREADGROUP on one stream: ``entry_id`` ``>`` for new entries, an id to re-read this
    consumer's own pending list from it (that never blocks)."""
    counting: Command = ("COUNT", count) if count is not None else ()
    blocking: Command = ("BLOCK", to_ms(block)) if block is not None else ()
    return ("XREADGROUP", "GROUP", group, consumer, *counting, *blocking,
            "STREAMS", key, entry_id)


def read_many_command(keys: Sequence[str], group: str, consumer: str, *, count: int,
                      block: timedelta) -> Command:
    """One XREADGROUP for new entries of several streams of one group (listener/parking.py)."""
    return ("XREADGROUP", "GROUP", group, consumer, "COUNT", count, "BLOCK", to_ms(block),
            "STREAMS", *keys, *(">" for _ in keys))


# -- replies ---------------------------------------------------------------------------
def parse_read_many_reply(reply: Any) -> list[tuple[str, list[StreamEntry]]]:
    """A raw XREADGROUP reply over several streams: (stream, entries) for each stream that
    had any (RESP2 list of pairs, or RESP3 mapping)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [(str(key), parse_entries(rows)) for key, rows in pairs]


def parse_read_reply(reply: Any) -> list[StreamEntry]:
    """A raw XREADGROUP reply for one stream: ``[[stream, [[id, [f, v, …]], …]]]`` in
    RESP2, ``{stream: [[id, [f, v, …]], …]}`` in RESP3 (the wire redis-py may choose).

    A pending entry deleted from the stream comes back as ``[id, nil]``: empty fields.
    """
    if not reply:
        return []
    rows = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    return parse_entries(rows)


def parse_entries(rows: Any) -> list[StreamEntry]:
    """Raw ``[[id, [f, v, …]], …]`` rows (XRANGE, XREADGROUP, XAUTOCLAIM, our scripts) as
    entries that keep their flat field list too (see ``StreamEntry.raw``)."""
    out = []
    for entry_id, flat in rows or ():
        if flat:
            it = iter(flat)
            out.append(StreamEntry(entry_id, dict(zip(it, it, strict=True)), flat))
        else:
            out.append(StreamEntry(entry_id, {}))
    return out


def parsed_entries(rows: Iterable[Any] | None) -> list[StreamEntry]:
    """Rows redis-py has already parsed (its response callbacks): ``[(id, {f: v}), …]``."""
    if not rows:
        return []
    return [StreamEntry(entry_id, fields) for entry_id, fields in rows]


def parsed_read_reply(reply: Any) -> list[StreamEntry]:
    """An XREADGROUP reply as redis-py parses it in a pipeline: ``[[stream, rows]]``."""
    return parsed_entries(reply[0][1]) if reply else []


def marker_says_handled(value: str | bytes | None, entry_id: str) -> bool:
    """Whether a marker's value means "this business key was handled": by another entry
    (``1 <other id>``, or ``1`` from before values named their entry). The entry's own
    ``1 <its id>`` seen at its delivery means its ack never took on this node (a failover
    whose new primary never delivered it): handled again, at least once. ``2`` (an
    IdempotentScript applied it, no success yet) is not "handled" either."""
    if value is None:
        return False
    text = value.decode() if isinstance(value, bytes) else value
    return text == "1" or (text.startswith("1 ") and text != f"1 {entry_id}")
