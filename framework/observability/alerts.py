"""Seed 002 §6.3's alarms as pure checks, and the state that logs each crossing once."""

from __future__ import annotations

import time

from loguru import logger

from ..config.models import AlertSettings
from ..wire.ids import waited
from .stream_views import GroupView


def crossed(group: GroupView, settings: AlertSettings, now: float | None = None,
            idle_past: bool | None = None) -> dict[str, bool]:
    """Which thresholds this group is over now (``now``: epoch seconds). ``idle_past``:
    whether any pending entry idles past ``max_oldest_pending_idle`` (XPENDING IDLE, asked
    by the caller); without it, the longest idle the view saw is compared."""
    consumers = max(len(group.consumers), 1)
    idle = settings.max_oldest_pending_idle
    age = settings.max_oldest_pending_age
    oldest = group.oldest_pending_id
    return {
        "oldest_pending_age": age is not None and oldest is not None
        and waited(oldest, time.time() if now is None else now) > age.total_seconds(),
        "pending": settings.max_pending_per_consumer is not None
        and group.pending > consumers * settings.max_pending_per_consumer,
        "oldest_pending_idle": idle is not None and (
            idle_past if idle_past is not None else group.max_pending_idle_ms is not None
            and group.max_pending_idle_ms > idle.total_seconds() * 1000),
        "lag": settings.max_lag is not None and (group.lag or 0) > settings.max_lag,
    }


class AlertState:
    """Remembers what is crossed, so a warning is logged once per crossing, not per check."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str, str], bool] = {}

    def update(self, listener: str, stream: str, group: GroupView,
               settings: AlertSettings, idle_past: bool | None = None) -> None:
        for alert, now in crossed(group, settings, idle_past=idle_past).items():
            key = (listener, stream, alert)
            before = self.active.get(key, False)
            self.active[key] = now
            log = logger.bind(listener=listener, stream=stream, group=group.name)
            if now and not before:
                log.warning("alert {}: pending {}, oldest pending idle {}ms, lag {} "
                            "({} consumers)", alert, group.pending,
                            group.oldest_pending_idle_ms, group.lag, len(group.consumers))
            elif before and not now:
                log.info("alert {} cleared", alert)
