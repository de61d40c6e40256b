"""Cleanup job: delete consumers that are long idle and hold nothing pending.

A consumer holding pending entries is never deleted (XGROUP DELCONSUMER would drop them
from the PEL: lost work); the check and the delete are one script, so a consumer that
receives an entry in between is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from loguru import logger

from ..config.models import CleanupSettings
from ..wire.operator import RedisOperator
from .schedule import Every

if TYPE_CHECKING:
    from .contract import DeclaredListener

_MAX_DELETES = 100


async def declare(listener: DeclaredListener) -> CleanupJob | None:
    """A listener has cleanup unless ``cleanup.enabled`` is false."""
    settings = listener.settings.cleanup
    if not settings.enabled:
        return None
    return CleanupJob(listener.operator, settings, listener.spec.group, listener.streams,
                      listener=listener.name)


class CleanupJob:
    def __init__(self, operator: RedisOperator, settings: CleanupSettings, group: str,
                 streams: Callable[[], Iterable[str]], listener: str = "") -> None:
        self.listener = listener
        self._operator = operator
        self._settings = settings
        self._group = group
        self._streams = streams
        self.deleted: list[str] = []

    def every(self) -> Every:
        return Every(f"cleanup:{self.listener}", self._settings.interval, self.run_once)

    async def run_once(self) -> list[str]:
        deleted: list[str] = []
        idle_ms = self._settings.consumer_idle.total_seconds() * 1000
        for key in list(self._streams()):
            if not await self._operator.group_exists(key, self._group):
                continue
            for consumer in await self._operator.info_consumers(key, self._group):
                if len(deleted) >= _MAX_DELETES:
                    return deleted  # bounded work; the rest next time
                if consumer.pending or consumer.idle_ms < idle_ms:
                    continue
                if await self._operator.delete_idle_consumer(
                        key, self._group, consumer.name, self._settings.consumer_idle):
                    deleted.append(f"{key}/{consumer.name}")
                    logger.bind(stream=key, group=self._group).info(
                        "deleted consumer {} (idle {:.0f}s, nothing pending)", consumer.name,
                        consumer.idle_ms / 1000)
        self.deleted.extend(deleted)
        return deleted
