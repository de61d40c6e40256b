"""What the console shows of each listener, read from Redis (XINFO, XPENDING, the leases,
the dead-letter streams' XLEN) — the same reads as ``streamboot status``, so the page's
numbers are XINFO's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from time import time

from ..config.models import AppSettings, ListenerSettings
from ..observability.stream_views import (
    ConsumerView,
    GroupView,
    LeaseView,
    listener_streams,
    stream_view,
)
from ..partitions.keys import members_key
from ..wire.ids import waited
from ..wire.operator import RedisOperator
from ..wire.records import PendingEntry


@dataclass
class StreamRow:
    """One physical stream of a listener (a partition, a period, or the stream itself)."""

    key: str
    partition: int | None
    exists: bool
    length: int = 0
    group: GroupView | None = None
    """None: the listener's group does not exist on it (yet)."""
    lease: LeaseView | None = None
    dead_letter_stream: str | None = None
    dead_letters: int = 0

    @property
    def lag(self) -> int | None:
        return self.group.lag if self.group is not None else 0

    @property
    def pending(self) -> int:
        return self.group.pending if self.group is not None else 0

    @property
    def consumers(self) -> list[ConsumerView]:
        return self.group.consumers if self.group is not None else []

    def oldest_pending_age(self, now: float) -> float | None:
        """Seconds since the oldest pending entry was published; None with none pending."""
        oldest = self.group.oldest_pending_id if self.group is not None else None
        return waited(oldest, now) if oldest else None


@dataclass
class ListenerOverview:
    name: str
    settings: ListenerSettings
    rows: list[StreamRow] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    """A partitioned listener's live members (their heartbeats)."""

    @property
    def lag(self) -> int | None:
        """Summed over its streams; None when Redis cannot say for one of them."""
        lags = [row.lag for row in self.rows]
        return None if any(lag is None for lag in lags) else sum(lag or 0 for lag in lags)

    @property
    def pending(self) -> int:
        return sum(row.pending for row in self.rows)

    @property
    def length(self) -> int:
        return sum(row.length for row in self.rows)

    @property
    def dead_letters(self) -> int:
        return sum(row.dead_letters for row in self.rows)

    @property
    def entries_read(self) -> int | None:
        """The group's entries-read summed over its streams (its growth is the rate)."""
        reads = [row.group.entries_read for row in self.rows if row.group is not None]
        return None if any(r is None for r in reads) else sum(r or 0 for r in reads)

    def oldest_pending_age(self, now: float) -> float | None:
        ages = [a for row in self.rows if (a := row.oldest_pending_age(now)) is not None]
        return max(ages, default=None)

    @property
    def consumers(self) -> int:
        return len({c.name for row in self.rows for c in row.consumers})

    @property
    def dead_letter_streams(self) -> list[str]:
        return [row.dead_letter_stream for row in self.rows if row.dead_letter_stream]


async def overview(operator: RedisOperator, settings: AppSettings,
                   now: datetime) -> list[ListenerOverview]:
    """Every listener of the file, in its order."""
    return [await listener_overview(operator, name, listener, now)
            for name, listener in settings.listeners.items()]


async def listener_overview(operator: RedisOperator, name: str, listener: ListenerSettings,
                            now: datetime) -> ListenerOverview:
    found = ListenerOverview(name, listener)
    for stream in listener_streams(listener, now):
        view = await stream_view(operator, stream.key, leases=listener.partitions > 1)
        if not view.exists and listener.rotation is not None:
            continue  # a period not made yet, or gone with its TTL
        group = next((g for g in view.groups if g.name == listener.group), None)
        row = StreamRow(stream.key, stream.partition, view.exists, view.length, group,
                        view.lease, stream.dead_letters)
        if stream.dead_letters is not None:
            row.dead_letters = await operator.xlen(stream.dead_letters)
        found.rows.append(row)
    if listener.partitions > 1:
        found.members = await operator.leases.members(
            members_key(listener.stream, listener.group))
    return found


@dataclass(frozen=True, slots=True)
class PendingRow:
    stream: str
    entry: PendingEntry
    age_s: float
    """Since its publish (its id's time)."""


async def pending_rows(operator: RedisOperator, listener: ListenerOverview,
                       limit: int = 100) -> list[PendingRow]:
    """The oldest pending entries of each of the listener's streams (``limit`` each)."""
    rows = []
    now = time()
    for row in listener.rows:
        if row.group is None or not row.group.pending:
            continue
        found = await operator.pending_range(row.key, listener.settings.group, count=limit)
        rows += [PendingRow(row.key, entry, waited(entry.id, now)) for entry in found]
    return rows
