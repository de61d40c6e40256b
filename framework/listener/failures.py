"""What the listener does with an entry it could not handle: retry it, leave it for the
recovery job, or dead-letter it — never ack it unhandled, never drop it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter

from loguru import logger

from ..observability import tracing
from ..observability.logs import handler_traceback
from ..wire.operator import RedisOperator
from ..wire.records import StreamEntry
from ..wire.redis_errors import describe_permanent, is_permanent
from .acks import Acks
from .dead_letters import (
    REASON_INVALID_PAYLOAD,
    REASON_MAX_DELIVERIES,
    dead_letter_pairs,
)
from .ownership import Losses
from .retry import Next, after_failure
from .spec import ListenerSpec
from .stats import ListenerStats
from .tenure import Tenure, held

Reinject = Callable[[StreamEntry, int], None]
GaveUp = Callable[[str], None]


class FailurePolicy:
    def __init__(self, spec: ListenerSpec, operator: RedisOperator,
                 acks: Acks, stats: ListenerStats, reinject: Reinject, losses: Losses,
                 gave_up: GaveUp | None = None, tenure: Tenure | None = None):
        """``gave_up(entry_id)``: a retry that was scheduled will not run here (the claim
        failed, or another consumer took the entry): its key may move on (ordering).
        ``tenure``: the partition's lease, when leased — a member that lost it neither
        retries nor dead-letters what it held (the fence, tenure.py)."""
        self._spec = spec
        self._tenure = tenure
        self._gave_up = gave_up
        self._retrying: set[str] = set()
        self._operator = operator
        self._acks = acks
        self._stats = stats
        self._reinject = reinject
        self._losses = losses
        self._timers: set[asyncio.TimerHandle] = set()
        self._due: list[tuple[StreamEntry, int]] = []
        self._pump: asyncio.Task[None] | None = None

    async def failed(self, entry: StreamEntry, exc: Exception, deliveries: int) -> None:
        decision = after_failure(deliveries, self._spec.retry,
                                 self._spec.dead_letter_stream is not None)
        log = logger.bind(entry_id=entry.id)
        if self._spec.tracing:
            tracing.failed(exc)
        if self._tenure is not None and self._tenure.lost:
            log.warning("handler failed on delivery {}: {}: {}; not retried here: this "
                        "member lost the partition's lease, the entry is pending for its "
                        "new owner", deliveries, type(exc).__name__, exc)
            self._stats.fenced += 1
            self._release(entry.id)
            return
        if decision.next is Next.DEAD_LETTER:
            # One line (the reason is in it and in dlq_error); the traceback when asked for.
            log.opt(exception=handler_traceback(exc)).error(
                "handler failed on delivery {} of {}: {}: {}; dead-lettering", deliveries,
                self._spec.retry.max_deliveries, type(exc).__name__, exc)
            await self.dead_letter(entry, REASON_MAX_DELIVERIES, exc, deliveries)
        elif decision.next is Next.RETRY_LATER:
            log.warning("handler failed on delivery {}: {}: {}; retrying in {:.2f}s", deliveries,
                        type(exc).__name__, exc, decision.delay)
            if self._spec.tracing:
                tracing.event("retry", delivery=deliveries, delay_seconds=decision.delay)
            self._schedule_retry(entry, deliveries, decision.delay)
        else:
            if self._spec.tracing:
                tracing.event("left_pending", delivery=deliveries)
            log.warning("handler failed on delivery {}: {}: {}; left pending for recovery",
                        deliveries, type(exc).__name__, exc)
            self._release(entry.id)

    async def invalid(self, entry: StreamEntry, exc: Exception, deliveries: int,
                      reason: str = REASON_INVALID_PAYLOAD) -> None:
        """An entry that cannot become the handler's payload (not UTF-8, fails validation)
        cannot succeed on retry: dead-letter it now."""
        log = logger.bind(entry_id=entry.id)
        if self._spec.dead_letter_stream is None:
            log.error("entry rejected ({}); no dead-letter stream, so it stays pending", exc)
            self._release(entry.id)
            return
        log.error("entry rejected ({}); dead-lettering", exc)
        await self.dead_letter(entry, reason, exc, deliveries)

    async def exhausted(self, entry: StreamEntry, deliveries: int) -> None:
        """Delivered too often without an outcome (its consumers died on it)."""
        logger.bind(entry_id=entry.id).error(
            "delivered {} times (max {}) without success; dead-lettering unhandled",
            deliveries, self._spec.retry.max_deliveries)
        await self.dead_letter(entry, REASON_MAX_DELIVERIES, None, deliveries)

    async def dead_letter(self, entry: StreamEntry, reason: str, exc: BaseException | None,
                          deliveries: int | None) -> None:
        spec = self._spec
        assert spec.dead_letter_stream is not None
        if self._tenure is not None and not await held(self._tenure):
            self._acks.fence([entry.id], ", before it could be dead-lettered")
            return
        pairs = dead_letter_pairs(entry, reason=reason, error=exc, stream=spec.stream,
                                  group=spec.group, deliveries=deliveries)
        try:
            written = await self._operator.dead_letter(spec.stream, spec.dead_letter_stream,
                                                       spec.group, spec.consumer, entry.id,
                                                       pairs)
        except Exception as err:
            logger.bind(entry_id=entry.id).warning(
                "could not dead-letter ({}); left pending, it will be reclaimed",
                describe_permanent(err) if is_permanent(err) else err)
            self._release(entry.id)
            return
        self._release(entry.id)
        if written is None:
            logger.bind(entry_id=entry.id).warning(
                "not dead-lettered: another consumer owns or acked it meanwhile")
            return
        self._stats.dead_lettered += 1
        if spec.tracing:
            tracing.event("dead_letter", reason=reason, dead_letter_stream=spec.dead_letter_stream,
                          dead_letter_id=written)

    @property
    def waiting(self) -> bool:
        """A retry is scheduled or being claimed: the loop must stay awake for it."""
        return bool(self._timers or self._due or self._retrying)

    def retrying(self, entry_id: str) -> bool:
        """The entry waits for its retry timer (or the claim that hands it back)."""
        return entry_id in self._retrying

    def _schedule_retry(self, entry: StreamEntry, deliveries: int, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._retrying.add(entry.id)

        def due() -> None:
            self._timers.discard(handle)
            self._due.append((entry, deliveries))
            if self._pump is None or self._pump.done():
                self._pump = loop.create_task(self._retry_due())

        handle = loop.call_later(delay, due)
        self._timers.add(handle)

    async def _retry_due(self) -> None:
        """Claim every retry that fell due together in one script call (one round trip),
        counting a delivery for each, and hand the ones still owned back to the loop."""
        await asyncio.sleep(0)  # let timers due in the same tick join this batch
        while self._due:  # retries falling due during a claim are taken by the next turn
            batch, self._due = self._due, []
            await self._claim_and_reinject(batch)

    async def _claim_and_reinject(self, batch: list[tuple[StreamEntry, int]]) -> None:
        spec = self._spec
        sent_at = perf_counter()
        try:
            claim = await self._operator.claim_owned(
                spec.stream, spec.group, spec.consumer, [e.id for e, _ in batch],
                count_delivery=True)
        except Exception as exc:
            logger.warning("{} retries postponed to recovery: {}", len(batch), exc)
            for entry, _ in batch:
                self._release(entry.id)
                self._give_up(entry.id)
            return
        owned = set(claim.touched)
        self._acks.confirmed(owned, sent_at)  # the claim vouches for them afresh
        taken = [e.id for e, _ in batch if e.id in claim.taken]
        deleted = [e.id for e, _ in batch if e.id in claim.deleted]
        for entry, deliveries in batch:
            self._retrying.discard(entry.id)
            if entry.id in owned:
                self._stats.retried += 1
                self._reinject(entry, deliveries + 1)
            else:  # taken over, deleted, or acked (by another consumer) meanwhile
                self._release(entry.id)
                self._give_up(entry.id)
        if taken:
            self._losses.taken_over(taken, " while it waited for its retry")
        if deleted:
            self._losses.deleted(deleted)

    def _give_up(self, entry_id: str) -> None:
        self._retrying.discard(entry_id)
        if self._gave_up is not None:
            self._gave_up(entry_id)

    def _release(self, entry_id: str) -> None:
        """Out of hand: dead-lettered (acked by the script), or left to age in the PEL
        until the recovery job reclaims it (no longer renewed)."""
        self._acks.release((entry_id,))

    def close(self) -> None:
        """At stop: pending retries are dropped; their entries stay pending and are
        reclaimed after min_idle (by this consumer's next run or by another)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._retrying.clear()
        if self._pump is not None:
            self._pump.cancel()
