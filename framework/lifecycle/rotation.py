"""Rotation: which physical stream key holds which period, as pure functions of time.

A rotated listener declares ``key_format: "orders:%Y%m%d%H"`` and ``period: 1h``.
Producers (the Publisher) and consumers resolve keys from this same policy, so they
always agree. Periods are aligned to the epoch in the policy's time zone (an hourly
period starts on the hour, a 15-minute one at :00, :15, :30, :45).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..config.models import RotationSettings


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
