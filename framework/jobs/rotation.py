"""Rotation job: keep a rotated listener subscribed to every period that has work.

Each run: create the current period's stream — and the next one's, ``precreate`` before
its start — with its group and TTL in one atomic step; keep consuming every past period
until ``drain_margin`` after its end *and* until its group has lag 0 and an empty PEL;
then release (unsubscribe) it, but keep looking at it on every run while it lives under
its TTL: an entry written late (a producer with a skewed clock) subscribes it again.
Unlike seed 004, a rotation never abandons unconsumed or pending entries of the previous
period. A period that expired while it still had entries to consume is reported (error log
and ``expired_unconsumed``), never ignored.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from loguru import logger

from ..clock import Clock
from ..handler import StreamHandler
from ..lifecycle.rotation import Period, RotationPolicy
from ..listener.container import ListenerContainer
from ..listener.spec import ListenerSpec
from ..operator import RedisOperator
from ..reliability.slots import colocated


class RotationJob:
    def __init__(self, spec: ListenerSpec, handler: StreamHandler[Any], policy: RotationPolicy,
                 operator: RedisOperator, listeners: ListenerContainer, clock: Clock) -> None:
        self.spec = spec
        self._handler = handler
        self.policy = policy
        self._operator = operator
        self._listeners = listeners
        self._clock = clock
        self.subscribed: dict[str, str] = {}  # stream key -> subscription name
        self.released: set[str] = set()
        self.expired_unconsumed: list[str] = []
        self.late_periods: list[str] = []
        """Past periods that received entries after they were released (then consumed)."""
        self._last_seen: dict[str, int] = {}  # key -> lag + pending at the last look
        self._log = logger.bind(listener=spec.name)

    def streams(self) -> list[str]:
        """The physical keys currently consumed (for retention, cleanup and status)."""
        return list(self.subscribed)

    async def run_once(self) -> None:
        now = self._clock.now()
        current = self.policy.current(now)
        for period in (current, self.policy.upcoming(now)):
            if period is not None:
                await self._prepare(period)
        for period in self.policy.live_periods(now):
            if period.start < current.start:
                await self._follow(period, now)

    async def _prepare(self, period: Period) -> None:
        """Create the stream, its group and its TTL in one step; subscribe to it."""
        spec = self.spec
        if await self._operator.create_stream(period.key, ttl=self.policy.settings.ttl,
                                              group=spec.group, start_id="0"):
            self._log.info("created {} with ttl {}s", period.key,
                           self.policy.settings.ttl.total_seconds())
        else:
            await self._operator.create_group(period.key, spec.group, "0", mkstream=False)
        self._subscribe(period.key)

    async def _follow(self, period: Period, now: Any) -> None:
        """A past period: consumed while it may still receive or hold work."""
        key = period.key
        groups = {g.name: g for g in await self._operator.info_groups(key)}
        group = groups.get(self.spec.group)
        if group is None:  # the stream is gone (expired, or never had this group)
            if self._last_seen.get(key, 0) > 0:
                self.expired_unconsumed.append(key)
                self._log.error("{} expired with about {} entries unconsumed or pending: "
                                "raise rotation.ttl or drain faster", key, self._last_seen[key])
            self._last_seen.pop(key, None)
            await self._release(key)
            return
        remaining = (group.lag or 0) + group.pending
        self._last_seen[key] = remaining
        if key in self.subscribed:
            if remaining == 0 and now >= period.end + self.policy.settings.drain_margin:
                self._log.info("{} drained (lag 0, nothing pending) and past its drain "
                               "margin: released", key)
                await self._release(key)
        elif remaining > 0:
            if key in self.released:
                self._log.warning("{} received {} entries after it was released (a producer's "
                                  "clock is behind?): consuming it again", key, remaining)
                self.late_periods.append(key)
            self.released.discard(key)
            self._subscribe(key)

    def _subscribe(self, key: str) -> None:
        if key in self.subscribed:
            return
        name = f"{self.spec.name}@{key}"
        spec = replace(self.spec, name=name, stream=key, owns_stream=False,
                       dead_letter_stream=colocated(key, ":dlq")
                       if self.spec.dead_letter_stream else None)
        self._listeners.register(spec, self._handler)
        self.subscribed[key] = name

    async def _release(self, key: str) -> None:
        self.released.add(key)
        name = self.subscribed.pop(key, None)
        if name is not None:
            await self._listeners.unregister(name)
