"""Rotation: which physical stream key holds which period, as pure functions of time.

A rotated listener declares ``key_format: "orders:%Y%m%d%H"`` and ``period: 1h``.
Producers (the Publisher) and consumers resolve keys from this same policy, so they
always agree. Periods are aligned to the epoch in the policy's time zone (an hourly
period starts on the hour, a 15-minute one at :00, :15, :30, :45).

The rule (``RotationPolicy``) is pure; the job below acts on it: it keeps a rotated
listener subscribed to every period that has work. Each run: create the current period's
stream — and the next one's, ``precreate`` before its start — with its group and TTL in
one atomic step; keep consuming every past period
until ``drain_margin`` after its end *and* until its group has lag 0 and an empty PEL;
then release (unsubscribe) it, but keep looking at it on every run while it lives under
its TTL: an entry written late (a producer with a skewed clock) subscribes it again.
Unlike seed 004, a rotation never abandons unconsumed or pending entries of the previous
period. A period that expired while it still had entries to consume is reported (error log
and ``expired_unconsumed``), never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from loguru import logger

from ..config.models import RotationSettings
from ..listener.spec import period_subscription
from ..wire.hash_slots import colocated
from .schedule import Every

if TYPE_CHECKING:  # the job's collaborators; the rule needs none of them (publisher.py)
    from ..handler import StreamHandler
    from ..listener.spec import ListenerSpec
    from ..wire.operator import RedisOperator
    from .clock import Clock
    from .contract import DeclaredListener, Listeners


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    start: datetime
    end: datetime


class RotationPolicy:
    def __init__(self, settings: RotationSettings) -> None:
        self.settings = settings
        self.zone = ZoneInfo(settings.timezone)
        self.period = settings.period
        self._seconds = int(settings.period.total_seconds())

    def period_at(self, when: datetime) -> Period:
        local = when.astimezone(self.zone)
        offset = local.utcoffset() or timedelta(0)
        epoch_seconds = int((local.timestamp() + offset.total_seconds()) // 1)
        start_local_epoch = epoch_seconds - epoch_seconds % self._seconds
        start = datetime.fromtimestamp(start_local_epoch - offset.total_seconds(), self.zone)
        return Period(start.strftime(self.settings.key_format), start, start + self.period)

    def current(self, now: datetime) -> Period:
        return self.period_at(now)

    def upcoming(self, now: datetime) -> Period | None:
        """The next period, once ``now`` is within ``precreate`` of its start."""
        nxt = self.period_at(self.current(now).end)
        return nxt if nxt.start - now <= self.settings.precreate else None

    def live_periods(self, now: datetime) -> list[Period]:
        """Every period whose stream may still exist: started within the TTL, oldest first."""
        periods = []
        cursor = self.current(now)
        oldest = now - self.settings.ttl - self.period
        while cursor.end > oldest:
            periods.append(cursor)
            cursor = self.period_at(cursor.start - timedelta(seconds=1))
        return list(reversed(periods))


# -- the job ----------------------------------------------------------------------------
async def declare(listener: DeclaredListener) -> RotationJob | None:
    """A listener with ``rotation`` reads its periods, not its ``stream``: this job
    subscribes it (to the current period and to older ones that still have work) and
    keeps its subscriptions as periods come and go."""
    settings = listener.settings.rotation
    if settings is None:
        return None
    job = RotationJob(listener.spec, listener.handler, RotationPolicy(settings),
                      listener.operator, listener.listeners, listener.clock)
    await job.run_once()
    listener.streams_from = job.streams
    return job


class RotationJob:
    def __init__(self, spec: ListenerSpec, handler: StreamHandler[Any], policy: RotationPolicy,
                 operator: RedisOperator, listeners: Listeners, clock: Clock) -> None:
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

    def every(self) -> Every:
        return Every(f"rotation:{self.spec.name}", self.policy.settings.check_interval,
                     self.run_once)

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
        name = period_subscription(self.spec.name, key)
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
