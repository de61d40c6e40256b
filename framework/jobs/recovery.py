"""Pending recovery: reclaim entries of dead or hung consumers and handle them again.

Live owners renew their entries every ``min_idle / 3`` (see ownership.py), so what is
idle for ``pending_scan.min_idle`` belongs to a consumer that is dead or hung.

Reclaimed entries are handled **one at a time, each acknowledged before the next is
claimed**. They come back because their consumer died — perhaps because one of them killed
it (``os._exit``, the OOM killer, a segfault). Claimed and handled as a batch, a poison
entry would take its batch mates down with it on every attempt: their delivery counts
would grow with its crashes until all of them were dead-lettered, though they had been
applied already (their acks died with the process). Claimed one by one (XAUTOCLAIM COUNT
1), only the entry being handled has its delivery counter raised by a crash, so only the
poison entry reaches ``max_deliveries`` and the dead-letter stream.

Each run continues the cursor of the previous one and is bounded: at most
``pending_scan.count`` entries and about one ``interval`` of time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from loguru import logger

from ..listener.poll import Subscription
from ..listener.spec import listener_of
from ..wire.operator import RedisOperator
from .schedule import Every

if TYPE_CHECKING:
    from .contract import DeclaredListener, Listeners

_WARN_ROWS = 10


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    claimed: int
    deleted: int
    overdue: int
    cursor: str


class PendingRecovery:
    def __init__(self, subscription: Subscription, operator: RedisOperator) -> None:
        self.subscription = subscription
        self._operator = operator
        self.cursor = "0-0"

    async def run_once(self) -> RecoveryReport:
        sub = self.subscription
        spec, scan = sub.spec, sub.spec.pending_scan
        log = logger.bind(stream=spec.stream, group=spec.group, consumer=spec.consumer)
        deadline = time.monotonic() + scan.interval.total_seconds()
        claimed: list[str] = []
        deleted = 0
        while len(claimed) < scan.count and not sub.stopping and time.monotonic() < deadline:
            sent_at = time.perf_counter()
            step = await self._operator.reclaim_one(spec.stream, spec.group, spec.consumer,
                                                    scan.min_idle, self.cursor)
            self.cursor = step.next_id
            if step.deleted_ids:
                # XAUTOCLAIM already removed them from the PEL: the data is gone. Said and
                # counted where every path says it (listener/losses.py), once per id.
                deleted += len(step.deleted_ids)
                sub.losses.deleted(step.deleted_ids)
            if step.entry is not None:
                claimed.append(step.entry.id)
                sub.stats.reclaimed += 1
                if not await sub.recover(step.entry, step.deliveries, sent_at):
                    break  # its ack did not go out: claim no more this run
            if step.done or step.entry is None:
                break
        if claimed:
            log.info("reclaimed {} entries idle over {:g}s, one at a time (handled, or "
                     "dead-lettered past max_deliveries): {}",
                     len(claimed), scan.min_idle.total_seconds(),
                     ", ".join(claimed[:_WARN_ROWS]) + (" …" if len(claimed) > _WARN_ROWS
                                                        else ""))
        overdue = await self._operator.pending_range(spec.stream, spec.group,
                                                     min_idle=scan.warn_after, count=_WARN_ROWS)
        for row in overdue:
            log.bind(entry_id=row.id).warning(
                "entry pending for {:.0f}s (owner {}, {} deliveries)", row.idle_ms / 1000,
                row.consumer, row.deliveries)
        return RecoveryReport(len(claimed), deleted, len(overdue), self.cursor)


async def declare(listener: DeclaredListener) -> ListenerRecovery | None:
    """A listener has pending recovery unless ``pending_scan.enabled`` is false."""
    scan = listener.settings.pending_scan
    if not scan.enabled:
        return None
    return ListenerRecovery(listener.name, scan.interval, listener.listeners, listener.operator)


class ListenerRecovery:
    """One listener's recovery job: every ``pending_scan.interval``, over each of its live
    subscriptions (a rotated listener has one per period that still has work), each with
    its own XAUTOCLAIM cursor."""

    def __init__(self, listener: str, interval: timedelta, listeners: Listeners,
                 operator: RedisOperator) -> None:
        self.listener = listener
        self._interval = interval
        self._listeners = listeners
        self._operator = operator
        self.by_subscription: dict[str, PendingRecovery] = {}

    def every(self) -> Every:
        # At start too: orphans of a consumer that died before this process started.
        return Every(f"recovery:{self.listener}", self._interval, self.run_once,
                     at_start=True)

    async def run_once(self) -> None:
        for name, sub in self._listeners.subscriptions.items():
            if listener_of(name) != self.listener or not sub.live or sub.replaying:
                # Another listener's; not started yet, stopping, failed for good; or
                # reading its own pending list, whose entries (idle since the previous
                # run of this consumer) would otherwise be claimed here too and handled
                # twice at once.
                continue
            recovery = self.by_subscription.get(name)
            if recovery is None or recovery.subscription is not sub:
                recovery = self.by_subscription[name] = PendingRecovery(sub, self._operator)
            await recovery.run_once()
