"""Run a batch of entries through one handler, at most ``concurrency`` at a time.

Only successes are recorded for acknowledgement: a failed or undecodable entry stays in
the PEL, where a later re-read or the recovery job finds it again (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loguru import logger

from framework.codecs import PayloadError, codec_for
from framework.handler import StreamHandler
from framework.listener.spec import ListenerSpec
from framework.listener.stats import ListenerStats
from framework.message import Message
from framework.records import StreamEntry


class Dispatcher:
    def __init__(self, spec: ListenerSpec, handler: StreamHandler[Any], stats: ListenerStats):
        self._spec = spec
        self._stats = stats
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

    async def dispatch(self, entries: Sequence[StreamEntry], delivery_count: int | None) -> None:
        width = min(self._spec.concurrency, len(entries))
        if width <= 1:
            for entry in entries:
                await self._one(entry, delivery_count)
            return
        pending = iter(entries)

        async def worker() -> None:
            for entry in pending:
                await self._one(entry, delivery_count)

        await asyncio.gather(*(worker() for _ in range(width)))

    async def _one(self, entry: StreamEntry, delivery_count: int | None) -> None:
        spec = self._spec
        try:
            payload = self._decode(entry.fields)
        except PayloadError as exc:
            self._stats.invalid += 1
            logger.bind(entry_id=entry.id).error("payload rejected, entry left pending: {}", exc)
            return
        message = Message(entry.id, spec.stream, spec.group, spec.consumer, entry.fields,
                          payload, delivery_count)
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
            logger.opt(exception=exc).bind(entry_id=entry.id).error(
                "handler failed, entry left pending: {}: {}", type(exc).__name__, exc
            )
            return
        self._stats.handled += 1
        self.succeeded.append(entry.id)

    def take_succeeded(self) -> list[str]:
        ids, self.succeeded = self.succeeded, []
        return ids

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
