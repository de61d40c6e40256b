"""Retention: how far a stream may be trimmed without losing work — a pure decision, and
the job that trims by it.

A group still needs every entry it has not been delivered (after its last-delivered id)
and every entry it holds pending. The safe point is the smallest, over all groups, of
"oldest pending id" and "the id right after last-delivered"; XTRIM MINID to that point
removes only entries every group is done with.

The job trims a stream by length or age, never past what a group still needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from ..config.durations import to_ms
from ..config.models import RetentionSettings
from ..wire.ids import after, format_id, parse_id
from .schedule import Every

if TYPE_CHECKING:  # the job's collaborators; the rule is pure
    from ..wire.operator import RedisOperator
    from .clock import Clock
    from .contract import DeclaredListener



@dataclass(frozen=True, slots=True)
class GroupPosition:
    name: str
    last_delivered: str
    oldest_pending: str | None
    lag: int | None


@dataclass(frozen=True, slots=True)
class TrimPlan:
    minid: str | None
    """Trim everything older than this id; None: nothing to trim."""
    held_back_by: list[GroupPosition]
    """Groups whose unfinished work stopped the policy from trimming as far as it asked."""


def safe_point(group: GroupPosition) -> str:
    """The oldest id this group may still need."""
    if group.oldest_pending is not None:
        return group.oldest_pending
    return after(group.last_delivered)


def plan_trim(wanted_minid: str | None, groups: list[GroupPosition]) -> TrimPlan:
    """Trim to ``wanted_minid`` (what the policy asks), but never past a group's safe point."""
    if wanted_minid is None:
        return TrimPlan(None, [])
    wanted = parse_id(wanted_minid)
    holding = [g for g in groups if parse_id(safe_point(g)) < wanted]
    if not holding:
        return TrimPlan(wanted_minid, [])
    limit = min(parse_id(safe_point(g)) for g in holding)
    return TrimPlan(format_id(limit) if limit > (0, 0) else None, holding)


def minid_for_age(now_ms: int, max_age_ms: int) -> str:
    return f"{max(now_ms - max_age_ms, 0)}-0"


def later(a: str | None, b: str | None) -> str | None:
    """The larger of two optional ids: the policy that trims more wins."""
    if a is None or b is None:
        return a or b
    return a if parse_id(a) >= parse_id(b) else b


# -- the job ----------------------------------------------------------------------------
async def declare(listener: DeclaredListener) -> RetentionJob | None:
    """A listener has retention when it declares ``retention``."""
    settings = listener.settings.retention
    if settings is None:
        return None
    return RetentionJob(listener.operator, settings, listener.streams, listener.clock,
                        listener=listener.name)


class RetentionJob:
    def __init__(self, operator: RedisOperator, settings: RetentionSettings,
                 streams: Callable[[], Iterable[str]], clock: Clock,
                 listener: str = "") -> None:
        self.listener = listener
        self._operator = operator
        self._settings = settings
        self._streams = streams
        self._clock = clock
        self.trimmed = 0

    def every(self) -> Every:
        return Every(f"retention:{self.listener}", self._settings.interval, self.run_once,
                     at_start=True)

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
