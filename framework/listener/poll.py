"""One subscription's loop: read a batch, dispatch it, acknowledge it — forever, safely.

The acknowledgement of a finished batch travels in the same pipeline as the next
XREADGROUP, so a steady stream costs one round trip per batch, not two.

Read offsets: the loop starts by re-reading this consumer's own PEL (id ``0``, then
after the last id seen) so entries it held when it last stopped are handled before new
ones; then it reads ``>``. After a connection error it re-reads its PEL again, since a
batch whose ack was lost is still pending under its name.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loguru import logger

from framework.backoff import Backoff
from framework.errors import NoGroupError, WrongTypeError, is_transient
from framework.handler import StreamHandler
from framework.listener.dispatch import Dispatcher
from framework.listener.spec import ListenerSpec
from framework.listener.stats import ListenerStats
from framework.operator import RedisOperator
from framework.records import StreamEntry

NEW = ">"
OWN_PEL_START = "0"


class Subscription:
    """A live consumer of one group on one stream, feeding one handler."""

    def __init__(
        self, spec: ListenerSpec, operator: RedisOperator, handler: StreamHandler[Any]
    ) -> None:
        self.spec = spec
        self.stats = ListenerStats()
        self.failure: BaseException | None = None
        """Set when a terminal error (such as WRONGTYPE) ended this subscription."""
        self._operator = operator
        self._dispatcher = Dispatcher(spec, handler, self.stats)
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self._backoff = Backoff()
        self._cursor = OWN_PEL_START
        self._log = logger.bind(listener=spec.name, stream=spec.stream, group=spec.group,
                                consumer=spec.consumer)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop reading; the batch in hand is finished and acknowledged."""
        self._stop.set()

    async def wait_started(self, timeout: float) -> bool:
        """True once the group exists and the first read is about to be sent."""
        try:
            await asyncio.wait_for(self._started.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        spec = self.spec
        with logger.contextualize(listener=spec.name, stream=spec.stream, group=spec.group,
                                  consumer=spec.consumer):
            try:
                await self._ensure_group()
                self._started.set()
                self._log.info("listening (batch {}, concurrency {}, block {}s)",
                               spec.batch_size, spec.concurrency,
                               spec.poll_timeout.total_seconds())
                while not self._stop.is_set():
                    await self._step()
            except WrongTypeError as exc:
                self.failure = exc
                self._log.error("listener stopped: {}; the other listeners run on", exc)
            finally:
                await self._flush_acks()
                self._dispatcher.close()

    async def _step(self) -> None:
        spec = self.spec
        ack = self._dispatcher.take_succeeded()
        try:
            acked, entries = await self._operator.ack_and_read(
                spec.stream, spec.group, spec.consumer, ack,
                count=spec.batch_size, block=spec.poll_timeout, entry_id=self._cursor,
            )
        except NoGroupError as exc:
            self._log.warning("{}; recreating it (MKSTREAM)", exc)
            await self._ensure_group()
            self._cursor = NEW  # a recreated group has no PEL; the lost acks are moot
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._dispatcher.succeeded[:0] = ack  # acknowledge them with the next read
            await self._redis_down(exc)
            return
        self._backoff.reset()
        self.stats.reads += 1
        self.stats.acked += acked
        self.stats.last_poll = time.monotonic()
        if self._cursor == NEW:
            if entries:
                await self._dispatcher.dispatch(entries, 1)
            return
        await self._replay_own_pending(entries)

    async def _replay_own_pending(self, entries: list[StreamEntry]) -> None:
        if not entries:
            self._cursor = NEW
            return
        self._cursor = entries[-1].id
        live = [e for e in entries if not e.deleted]
        gone = [e.id for e in entries if e.deleted]
        if gone:
            # Trimmed or deleted while pending: nothing left to handle, so release them.
            self.stats.deleted_while_pending += len(gone)
            self._dispatcher.succeeded.extend(gone)
            self._log.warning("{} pending entries no longer exist in the stream; acking them",
                              len(gone))
        if live:
            self._log.info("re-reading {} entries from own pending list", len(live))
            await self._dispatcher.dispatch(live, None)

    async def _ensure_group(self) -> None:
        spec = self.spec
        while not self._stop.is_set():
            try:
                if await self._operator.create_group(spec.stream, spec.group, spec.start_id):
                    self._log.info("created group at {}", spec.start_id)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                await self._redis_down(exc)

    async def _redis_down(self, exc: BaseException) -> None:
        self.stats.redis_errors += 1
        self._cursor = OWN_PEL_START
        delay = await self._backoff.sleep(self._stop)
        self._log.warning("redis unavailable ({}: {}); retried after {:.2f}s",
                          type(exc).__name__, exc, delay)

    async def _flush_acks(self) -> None:
        ids = self._dispatcher.take_succeeded()
        if not ids:
            return
        try:
            self.stats.acked += await self._operator.xack(self.spec.stream, self.spec.group, ids)
        except Exception as exc:
            self._log.warning("could not ack {} entries at stop ({}); they stay pending and "
                              "are re-delivered", len(ids), exc)
