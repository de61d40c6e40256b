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
from datetime import timedelta
from time import perf_counter
from typing import Any

from framework.codecs import PayloadError, codec_for
from framework.decoding import undecodable
from framework.handler import StreamHandler
from framework.listener.failures import FailurePolicy
from framework.listener.spec import ListenerSpec
from framework.listener.stats import ListenerStats
from framework.logs import ENTRY_ID, install_entry_context
from framework.message import Message
from framework.records import StreamEntry
from framework.reliability.dead_letter import REASON_UNDECODABLE
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
        self._marker_ttl = idempotency.ttl if idempotency is not None else timedelta(0)
        install_entry_context()

    async def dispatch(self, entries: Sequence[StreamEntry],
                       deliveries: Mapping[str, int] | None = None) -> None:
        """``deliveries`` maps ids to delivery counts; absent ids were delivered once.

        The batch runs inline in the poll task. Only if a handler really suspends (waits
        for I/O) do up to ``concurrency - 1`` more workers start, sharing one iterator over
        the batch: a cheap async handler costs no task at all, a slow one gets the full
        concurrency. The spawn is a ``call_soon`` callback, which the event loop can only
        run when the poll task yields; if it never yields, the callback is cancelled.
        """
        counts = deliveries or {}
        width = min(self._spec.concurrency, len(entries))
        pending = iter(entries)

        async def worker() -> None:
            for entry in pending:
                await self._one(entry, counts.get(entry.id, FRESH))

        if width <= 1:
            await worker()
            return
        loop = asyncio.get_running_loop()
        extra: list[asyncio.Task[None]] = []

        def widen() -> None:
            extra.extend(loop.create_task(worker()) for _ in range(width - 1))

        spawn = loop.call_soon(widen)
        try:
            await worker()
        except BaseException:  # cancelled (shutdown timeout): the extra workers stop too
            spawn.cancel()
            for task in extra:
                task.cancel()
            raise
        spawn.cancel()
        if extra:
            await asyncio.gather(*extra)  # cancelling this gather cancels them as well

    async def _one(self, entry: StreamEntry, deliveries: int) -> None:
        spec = self._spec
        entry_id, fields, _ = entry
        if spec.dead_letter_stream is not None and exhausted(deliveries, spec.retry):
            await self._failures.exhausted(entry, deliveries)
            return
        problem = undecodable(entry)
        if problem is not None:
            self._stats.invalid += 1
            await self._failures.invalid(entry, PayloadError(problem), deliveries,
                                         REASON_UNDECODABLE)
            return
        try:
            payload = self._decode(fields)
        except PayloadError as exc:
            self._stats.invalid += 1
            await self._failures.invalid(entry, exc, deliveries)
            return
        except Exception as exc:  # a validator that raised something else: same verdict
            self._stats.invalid += 1
            await self._failures.invalid(
                entry, PayloadError(f"payload could not be built: {type(exc).__name__}: "
                                    f"{exc}", exc), deliveries)
            return
        idempotency = self._idempotency
        marker = idempotency.marker_for(fields) if idempotency is not None else None
        message = Message(entry_id, spec.stream, spec.group, spec.consumer, fields, payload,
                          deliveries, None if marker is None else (marker, self._marker_ttl))
        token = ENTRY_ID.set(entry_id)
        started = perf_counter()
        try:
            if self._is_async:
                await self._handle(message)
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._pool, contextvars.copy_context().run,
                                           self._handle, message)
        except Exception as exc:
            self._stats.failed += 1
            await self._failures.failed(entry, exc, deliveries)
            return
        finally:
            ENTRY_ID.reset(token)
            self._stats.handler_seconds.observe(perf_counter() - started)
        self._stats.handled += 1
        self.succeeded.append(entry_id)
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
