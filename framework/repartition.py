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

from .config.models import ListenerSettings
from .errors import StartupError
from .operator import RedisOperator
from .partitions import partition_key


def count_key(stream: str) -> str:
    return f"streamboot:partitions:{{{stream}}}"


def layout(stream: str, partitions: int) -> list[str]:
    """The keys a listener of ``stream`` reads with ``partitions`` partitions."""
    if partitions == 1:
        return [stream]
    return [partition_key(stream, i) for i in range(partitions)]


@dataclass(frozen=True, slots=True)
class Backlog:
    key: str
    undelivered: int
    pending: int


def refusal(name: str, group: str, before: int, after: int,
            backlog: list[Backlog]) -> str | None:
    """Why the change from ``before`` to ``after`` partitions cannot happen now (None: it
    can): the old layout's keys still holding work for the group."""
    busy = [b for b in backlog if b.undelivered or b.pending]
    if not busy:
        return None
    shown = ", ".join(f"{b.key} ({b.undelivered} undelivered, {b.pending} pending)"
                      for b in busy[:4])
    more = f" and {len(busy) - 4} more" if len(busy) > 4 else ""
    return (f"listeners.{name}: partitions changed from {before} to {after}, but group "
            f"{group!r} still has work in the old layout: {shown}{more}. Changing N now would "
            f"run a key's entries out of order (or never read them): stop the producers, let "
            f"the listener drain with partitions: {before}, then change it (docs/scaling.md)")


async def check_partitions(operator: RedisOperator, name: str,
                           listener: ListenerSettings) -> None:
    """Refuse (StartupError) a change of ``partitions`` while the old layout has work;
    remember the new count once accepted."""
    if listener.rotation is not None:
        return  # each period is a new layout: change N at a boundary (docs/scaling.md)
    key = count_key(listener.stream)
    stored = await operator.get_text(key)
    before = int(stored) if stored and stored.isdigit() else (1 if listener.partitions > 1
                                                                else None)
    after = listener.partitions
    if before is None or before == after:
        return
    backlog = []
    for old in layout(listener.stream, before):
        for group in await operator.info_groups(old):
            if group.name == listener.group:
                backlog.append(Backlog(old, group.lag or 0, group.pending))
    problem = refusal(name, listener.group, before, after, backlog)
    if problem is not None:
        raise StartupError(problem)
    logger.warning("listeners.{}: partitions changed from {} to {}; the old layout was "
                   "drained, so no order is lost", name, before, after)
    await operator.set_text(key, str(after))
