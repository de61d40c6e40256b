"""Run a batch of entries through one handler, at most ``concurrency`` at a time.

Successes are collected for acknowledgement (with their idempotency markers); every
other outcome goes to the :class:`FailurePolicy`, which retries, leaves pending or
dead-letters — nothing is acknowledged unhandled.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loguru import logger

from framework.codecs import PayloadError, codec_for
from framework.handler import StreamHandler
from framework.listener.failures import FailurePolicy
from framework.listener.spec import ListenerSpec
from framework.listener.stats import ListenerStats
from framework.message import Message
from framework.records import StreamEntry
from framework.reliability.idempotency import Idempotency
from framework.reliability.retry import exhausted

FRESH = 1


class Dispatcher:
    def __init__(self, spec: ListenerSpec, handler: StreamHandler[Any], stats: ListenerStats,
                 failures: FailurePolicy, idempotency: Idempotency | None) -> None:
        self._spec = spec
        self._stats = stats
        self._failures = failures
        self._idempotency = idempotency
        self._decode = codec_for(spec.codec, spec.json_field).decoder(type(handler).payload_model)
        self._handle = handler.handle
        self._is_async = handler.is_async()
        self._pool = (
            None
            if self._is_async
            else ThreadPoolExecutor(spec.concurrency, thread_name_prefix=f"sb-{spec.name}")
        )
        self.succeeded: list[str] = []
        """Ids handled successfully and not yet acknowledged; the poll loop drains it."""
        self.markers: list[str] = []
        """Idempotency markers of those ids, set in the same round trip as their XACK."""

    async def dispatch(self, entries: Sequence[StreamEntry],
                       deliveries: Mapping[str, int] | None = None) -> None:
        """``deliveries`` maps ids to delivery counts; absent ids were delivered once."""
        counts = deliveries or {}
        width = min(self._spec.concurrency, len(entries))
        if width <= 1:
            for entry in entries:
                await self._one(entry, counts.get(entry.id, FRESH))
            return
        pending = iter(entries)

        async def worker() -> None:
            for entry in pending:
                await self._one(entry, counts.get(entry.id, FRESH))

        await asyncio.gather(*(worker() for _ in range(width)))

    async def _one(self, entry: StreamEntry, deliveries: int) -> None:
        spec = self._spec
        if exhausted(deliveries, spec.retry) and spec.dead_letter_stream is not None:
            await self._failures.exhausted(entry, deliveries)
            return
        try:
            payload = self._decode(entry.fields)
        except PayloadError as exc:
            self._stats.invalid += 1
            await self._failures.invalid(entry, exc, deliveries)
            return
        idempotency = self._idempotency
        marker = idempotency.marker_for(entry.fields) if idempotency else None
        message = Message(entry.id, spec.stream, spec.group, spec.consumer, entry.fields,
                          payload, deliveries,
                          None if marker is None or idempotency is None
                          else (marker, idempotency.ttl))
        try:
            with logger.contextualize(entry_id=entry.id):
                if self._is_async:
                    await self._handle(message)
                else:
                    ctx = contextvars.copy_context()
                    loop = asyncio.get_running_loop()
                    await loop.run_in_executor(self._pool, ctx.run, self._handle, message)
        except Exception as exc:
            self._stats.failed += 1
            await self._failures.failed(entry, exc, deliveries)
            return
        self._stats.handled += 1
        self.succeeded.append(entry.id)
        if marker is not None:
            self.markers.append(marker)

    def take(self) -> tuple[list[str], list[str]]:
        """The ids to acknowledge and their markers, handing ownership to the caller."""
        ids, markers = self.succeeded, self.markers
        self.succeeded, self.markers = [], []
        return ids, markers

    def give_back(self, ids: list[str], markers: list[str]) -> None:
        """An ack that could not be sent: send it with the next one."""
        self.succeeded[:0] = ids
        self.markers[:0] = markers

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
