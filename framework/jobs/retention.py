"""Retention job: trim a stream by length or age, never past what a group still needs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from loguru import logger

from ..clock import Clock
from ..config.durations import to_ms
from ..config.models import RetentionSettings
from ..ids import after
from ..lifecycle.retention import (
    GroupPosition,
    TrimPlan,
    later,
    minid_for_age,
    plan_trim,
)
from ..operator import RedisOperator


class RetentionJob:
    def __init__(self, operator: RedisOperator, settings: RetentionSettings,
                 streams: Callable[[], Iterable[str]], clock: Clock) -> None:
        self._operator = operator
        self._settings = settings
        self._streams = streams
        self._clock = clock
        self.trimmed = 0

    async def run_once(self) -> dict[str, TrimPlan]:
        return {key: await self.trim(key) for key in list(self._streams())}

    async def trim(self, key: str) -> TrimPlan:
        op, policy = self._operator, self._settings
        if not await op.exists(key):
            return TrimPlan(None, [])
        wanted = None
        if policy.max_age is not None:
            now_ms = int(self._clock.now().timestamp() * 1000)
            wanted = minid_for_age(now_ms, to_ms(policy.max_age))
        if policy.max_len is not None:
            excess = await op.xlen(key) - policy.max_len
            if excess > 0:
                # The id just after the last entry over the limit (bounded work per run).
                oldest = await op.xrange(key, count=min(excess, policy.max_trim))
                wanted = later(wanted, after(oldest[-1].id))
        plan = plan_trim(wanted, await self._positions(key))
        log = logger.bind(stream=key)
        for group in plan.held_back_by:
            log.warning("retention held back by group {} (lag {}, oldest pending {}): its "
                        "unconsumed entries are kept", group.name, group.lag,
                        group.oldest_pending)
        if plan.minid is not None:
            removed = await op.xtrim(key, minid=plan.minid, approximate=policy.approximate,
                                     limit=policy.max_trim)
            self.trimmed += removed
            if removed:
                log.info("trimmed {} entries older than {}", removed, plan.minid)
        return plan

    async def _positions(self, key: str) -> list[GroupPosition]:
        positions = []
        for group in await self._operator.info_groups(key):
            oldest = None
            if group.pending:
                oldest = (await self._operator.pending_summary(key, group.name)).min_id
            positions.append(GroupPosition(group.name, group.last_delivered_id, oldest,
                                           group.lag))
        return positions
