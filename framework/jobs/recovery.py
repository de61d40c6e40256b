"""Pending recovery: reclaim entries of dead or hung consumers and handle them again.

Per listener, each run makes one bounded ``XAUTOCLAIM`` step (``COUNT pending_scan.count``,
``min-idle pending_scan.min_idle``) to this process's consumer, continuing the cursor of
the previous run, and hands the claimed entries to the listener's own loop — the same
handler path as fresh entries, with the same retry, dead-letter and idempotency rules.
Live owners renew their entries every ``min_idle / 3`` (see ownership.py), so what is
idle that long belongs to a consumer that is dead or hung.
"""

from __future__ import annotations

from dataclasses import dataclass

from loguru import logger

from framework.listener.poll import Subscription
from framework.operator import RedisOperator

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
        result = await self._operator.xautoclaim(spec.stream, spec.group, spec.consumer,
                                                 scan.min_idle, self.cursor, scan.count)
        self.cursor = result.next_id
        log = logger.bind(stream=spec.stream, group=spec.group, consumer=spec.consumer)
        if result.deleted_ids:
            # XAUTOCLAIM already removed them from the PEL: the data is gone, count it.
            sub.stats.deleted_while_pending += len(result.deleted_ids)
            log.warning("{} pending entries were deleted or trimmed before being handled: {}",
                        len(result.deleted_ids), ", ".join(result.deleted_ids[:_WARN_ROWS]))
        if result.entries:
            ids = [e.id for e in result.entries]
            counts = await self._operator.delivery_counts(spec.stream, spec.group, ids)
            sub.stats.reclaimed += len(ids)
            log.info("reclaimed {} entries idle over {}s", len(ids),
                     scan.min_idle.total_seconds())
            sub.inject(result.entries, counts)
        overdue = await self._operator.pending_range(spec.stream, spec.group,
                                                     min_idle=scan.warn_after, count=_WARN_ROWS)
        for row in overdue:
            log.bind(entry_id=row.id).warning(
                "entry pending for {:.0f}s (owner {}, {} deliveries)", row.idle_ms / 1000,
                row.consumer, row.deliveries)
        return RecoveryReport(len(result.entries), len(result.deleted_ids), len(overdue),
                              self.cursor)
