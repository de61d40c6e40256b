"""Read-only views of streams, groups, consumers and pending entries, for the admin's
commands (``streamboot status``, ``pending``) and the metrics gauges."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..config.models import ListenerSettings
from ..errors import WrongTypeError
from ..jobs.rotation import RotationPolicy
from ..partitions.keys import PARTITION_KEY, lease_key, partitions_of
from ..wire.hash_slots import colocated
from ..wire.operator import RedisOperator


@dataclass
class ConsumerView:
    name: str
    pending: int
    idle_ms: int


@dataclass
class GroupView:
    name: str
    lag: int | None
    pending: int
    oldest_pending_idle_ms: int | None
    last_delivered_id: str
    consumers: list[ConsumerView] = field(default_factory=list)
    oldest_pending_id: str | None = None
    """The PEL's smallest id: its time is when the longest-waiting entry was published
    (the entries in hand are renewed, so their idle stays small; this age does not)."""
    entries_read: int | None = None
    """XINFO GROUPS' entries-read: its growth is the group's delivery rate."""
    max_pending_idle_ms: int | None = None
    """The longest idle among the oldest pending entries (up to IDLE_SCAN of them): the
    oldest may be in a live consumer's hands, renewed, while later ones were abandoned."""


IDLE_SCAN = 100
"""Pending entries a view reads for their idle times (oldest first)."""


@dataclass
class LeaseView:
    """A partition's lease (partitions/membership.py), as ``status`` shows it."""

    owner: str | None
    """None when free or expired."""
    epoch: int
    expires_in_s: float
    held_for_s: float
    """Since it was last granted (to this owner, at this epoch)."""


@dataclass
class StreamView:
    key: str
    exists: bool
    length: int = 0
    first_id: str | None = None
    last_id: str | None = None
    memory_bytes: int | None = None
    groups: list[GroupView] = field(default_factory=list)
    lease: LeaseView | None = None
    """A partition's lease, when asked for and the key is a partition."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ListenerStream:
    """One physical stream a listener reads, and where its dead letters go."""

    key: str
    dead_letters: str | None
    partition: int | None = None
    """Its partition's index, when the listener is partitioned."""


def listener_streams(listener: ListenerSettings, now: datetime) -> list[ListenerStream]:
    """Every stream a listener reads at ``now``: each partition's, each live rotation
    period's (of each partition), with their dead-letter streams (None: dead letters off).
    Periods that were never made are listed too: the caller shows those that exist."""
    found = []
    for index, part in enumerate(partitions_of(listener)):
        where = index if listener.partitions > 1 else None
        if part.rotation is None:
            found.append(ListenerStream(part.stream, part.dead_letter_stream, where))
            continue
        for period in RotationPolicy(part.rotation).live_periods(now):
            dlq = colocated(period.key, ":dlq") if part.dead_letter_stream else None
            found.append(ListenerStream(period.key, dlq, where))
    return found


async def stream_view(operator: RedisOperator, key: str, leases: bool = False) -> StreamView:
    """``leases``: also the lease of a partition's key (``status`` shows who owns it)."""
    view = await _stream(operator, key)
    if leases and PARTITION_KEY.match(key):
        state = await operator.leases.state(lease_key(key))
        if state.epoch:
            view.lease = LeaseView(state.live_owner, state.epoch,
                                   max(0.0, state.left_ms / 1000), state.age_ms / 1000)
    return view


async def _stream(operator: RedisOperator, key: str) -> StreamView:
    kind = await operator.key_type(key)
    if kind == "none":
        return StreamView(key, exists=False)
    if kind != "stream":
        raise WrongTypeError(key)
    info = await operator.info_stream(key)
    memory = await operator.memory_usage(key)
    view = StreamView(key, True, info.length,
                      info.first_entry.id if info.first_entry else None,
                      info.last_entry.id if info.last_entry else None,
                      int(memory) if memory is not None else None)
    for group in await operator.info_groups(key):
        oldest = oldest_id = longest = None
        if group.pending:
            rows = await operator.pending_range(key, group.name, count=IDLE_SCAN)
            if rows:
                oldest, oldest_id = rows[0].idle_ms, rows[0].id
                longest = max(row.idle_ms for row in rows)
        consumers = [ConsumerView(c.name, c.pending, c.idle_ms)
                     for c in await operator.info_consumers(key, group.name)]
        view.groups.append(GroupView(group.name, group.lag, group.pending, oldest,
                                     group.last_delivered_id, consumers, oldest_id,
                                     group.entries_read, longest))
    return view
