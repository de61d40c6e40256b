"""Changing a listener's number of partitions later: allowed only once nothing is in
flight, because routing moves.

``crc32(key) mod N`` sends a key to another partition when N changes, so entries of one key
written before and after the change would sit in two partitions and could run out of
order; and the keys a smaller N no longer reads would keep their entries for ever. So the
application remembers each partitioned listener's N (``streamboot:partitions:{<stream>}``)
and, at start, accepts a new N only when the listener's group has nothing left in the old
layout — no entry undelivered, none pending. Otherwise it refuses to start (exit 3), naming
each key still holding work. The procedure (docs/scaling.md): stop the producers, let the
listeners drain, then change ``partitions`` and start again.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger

from ..config.models import ListenerSettings
from ..errors import StartupError
from ..wire.hash_slots import colocated
from ..wire.operator import RedisOperator
from .keys import stream_keys


def count_key(stream: str) -> str:
    return f"streamboot:partitions:{{{stream}}}"


@dataclass(frozen=True, slots=True)
class Backlog:
    key: str
    undelivered: int
    pending: int


def refusal(name: str, group: str, before: int, after: int, backlog: list[Backlog],
            dead: list[tuple[str, int]] | None = None) -> str | None:
    """Why the change from ``before`` to ``after`` partitions cannot happen now (None: it
    can): the old layout's keys still holding work for the group, and the dead-letter
    streams of keys the new layout drops (their letters would be out of sight, and a
    replay would write them back to a stream nothing reads)."""
    busy = [b for b in backlog if b.undelivered or b.pending]
    dead = [(key, n) for key, n in dead or [] if n]
    if not busy and not dead:
        return None
    parts = []
    if busy:
        shown = ", ".join(f"{b.key} ({b.undelivered} undelivered, {b.pending} pending)"
                          for b in busy[:4])
        more = f" and {len(busy) - 4} more" if len(busy) > 4 else ""
        parts.append(f"group {group!r} still has work in the old layout: {shown}{more}")
    if dead:
        shown = ", ".join(f"{key} ({n} dead letter{'' if n == 1 else 's'})"
                          for key, n in dead[:4])
        more = f" and {len(dead) - 4} more" if len(dead) > 4 else ""
        parts.append(f"the dead-letter streams of keys it drops are not empty: {shown}{more} "
                     "(replay or purge them with the old file first)")
    return (f"listeners.{name}: partitions changed from {before} to {after}, but "
            f"{'; and '.join(parts)}. Changing N now would run a key's entries out of order "
            f"(or never read them): stop the producers, let the listener drain with "
            f"partitions: {before}, then change it (docs/scaling.md)")


async def check_partitions(operator: RedisOperator, name: str,
                           listener: ListenerSettings) -> None:
    """Refuse (StartupError) a change of ``partitions`` while the old layout has work;
    remember the new count once accepted."""
    if listener.rotation is not None:
        return  # each period is a new layout: change N at a boundary (docs/scaling.md)
    key = count_key(listener.stream)
    stored = await operator.get_text(key)
    after = listener.partitions
    if stored is None or not stored.isdigit():
        if after == 1:
            return
        if not await operator.exists(listener.stream) and not await operator.exists(
                colocated(listener.stream, ":dlq")):
            await operator.set_text(key, str(after))  # a new listener: nothing came before
            return
        before = 1
    else:
        before = int(stored)
    if before == after:
        return
    old_keys = stream_keys(listener.stream, before)
    backlog = []
    for old in old_keys:
        groups = {group.name: group for group in await operator.info_groups(old)}
        found = groups.get(listener.group)
        if found is not None:
            backlog.append(Backlog(old, found.lag or 0, found.pending))
        elif await operator.exists(old):  # never read by the group: all of it is work
            backlog.append(Backlog(old, await operator.xlen(old), 0))
    kept = set(stream_keys(listener.stream, after))
    dead = []
    for old in old_keys:
        dlq = colocated(old, ":dlq")
        if old not in kept and await operator.exists(dlq):
            dead.append((dlq, await operator.xlen(dlq)))
    problem = refusal(name, listener.group, before, after, backlog, dead)
    if problem is not None:
        raise StartupError(problem)
    logger.warning("listeners.{}: partitions changed from {} to {}; the old layout was "
                   "drained, so no order is lost", name, before, after)
    await operator.set_text(key, str(after))
