"""Idle subscriptions share one blocking read (standalone Redis).

A listener whose stream is drained blocks in XREADGROUP for ``poll_timeout``, again and
again, each on a connection of its own: 1,000 idle listeners held 1,000 connections and
woke 500 times a second between them. So a subscription whose read came back empty, with
nothing in hand, nothing owed and no retry waiting, *parks*: it closes its connection and
leaves its stream to the container's :class:`ParkingLot` for its group and consumer, which
reads every parked stream in **one** ``XREADGROUP … STREAMS k1 … kn > … >``. The first
entries of a stream wake its subscription, which reads on its own connection again (the
hot path unchanged) until the stream is drained once more.

- Entries reach their subscription through :meth:`park`'s future, or, when it left the lot
  meanwhile (a stop), through :meth:`take`: every delivered entry is handed over, none is
  left unseen in the consumer's pending list — with when the read that delivered them was
  sent, their receipt of ownership (ownership.py).
- When the set of parked streams changes, the read in flight is ended by CLIENT UNBLOCK
  after a short ``SETTLE`` (parks arriving together cost one re-read) and sent again.
- A read that fails wakes every parked subscription with ``None``, quietly:
  each reads on its own again, so only the stream the error is about meets it — on its
  own read, with its own backoff, policy and log line (NOGROUP recreated, a key of the
  wrong type ends it, Redis down retried) — and the others park again.
- Each return of the shared read, empty or not, counts as a poll of every parked
  subscription (health).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import timedelta
from time import perf_counter
from typing import Any, NamedTuple

from loguru import logger

from ..wire.commands import parse_read_many_reply, read_many_command
from ..wire.operator import RedisOperator
from ..wire.records import StreamEntry

SETTLE = 0.02
"""Seconds a change of the parked set waits before the shared read is sent again, so that
subscriptions parking together cost one re-read."""

Polled = Callable[[], None]


class Delivered(NamedTuple):
    """Entries the shared read delivered for one stream, and when (``perf_counter``) the
    first read that delivered some of them was sent."""

    entries: list[StreamEntry]
    sent_at: float


Parked = asyncio.Future[Delivered | None]
"""What a parked subscription waits for: new entries; ``None`` woken without any (a stop,
or the shared read failed: read on your own)."""


class ParkingLot:
    """One blocking read for the parked streams of one group and consumer."""

    def __init__(self, operator: RedisOperator, group: str, consumer: str, count: int,
                 block: timedelta) -> None:
        self._operator = operator
        self._group, self._consumer = group, consumer
        self._count, self._block = count, block
        self._parked: dict[str, tuple[Parked, Polled]] = {}
        self._inbox: dict[str, Delivered] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._client_id: int | None = None
        self._closed = False
        self._returned = asyncio.Event()
        """Set whenever no shared read is in flight."""
        self._returned.set()

    def park(self, stream: str, polled: Polled) -> Parked:
        """Wait for new entries of ``stream`` (see :data:`Parked`)."""
        future: Parked = asyncio.get_running_loop().create_future()
        waiting = self._inbox.pop(stream, None)
        if waiting is not None or self._closed:
            future.set_result(waiting)
            return future
        self._parked[stream] = (future, polled)
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"streamboot:parking:{self._group}")
        return future

    def leave(self, stream: str) -> None:
        """Wake the subscription of ``stream`` now, without entries (a stop)."""
        parked = self._parked.pop(stream, None)
        if parked is not None:
            if not parked[0].done():
                parked[0].set_result(None)
            self._changed.set()

    def take(self, stream: str) -> Delivered | None:
        """Entries delivered for ``stream`` after its subscription left the lot."""
        return self._inbox.pop(stream, None)

    async def settle(self) -> None:
        """Until the shared read in flight has come back (at a stop: what it delivered is
        then in :meth:`take`). Ended at once by CLIENT UNBLOCK; bounded by its BLOCK."""
        if self._returned.is_set():
            return
        await self._unblock()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._returned.wait(), self._block.total_seconds() + 1.0)

    async def close(self) -> None:
        self._closed = True
        for stream in list(self._parked):
            self.leave(stream)
        await self.settle()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self._drop()

    # -- the shared read -------------------------------------------------------------
    async def _run(self) -> None:
        while self._parked and not self._closed:
            self._changed.clear()
            streams = list(self._parked)
            sent_at = perf_counter()
            try:
                replies = await self._read(streams)
            except Exception as exc:
                await self._drop()
                logger.debug("shared read of {} streams failed ({}); each reads on its own",
                             len(streams), exc)
                self._wake_all()
                return
            for _, polled in list(self._parked.values()):
                polled()
            for stream, entries in replies:
                if not entries:
                    continue
                parked = self._parked.pop(stream, None)
                if parked is not None and not parked[0].done():
                    parked[0].set_result(Delivered(entries, sent_at))
                else:  # its subscription left meanwhile: keep them for it
                    kept = self._inbox.get(stream)
                    self._inbox[stream] = (Delivered(entries, sent_at) if kept is None else
                                           Delivered(kept.entries + entries, kept.sent_at))

    async def _read(self, streams: list[str]) -> list[tuple[str, list[StreamEntry]]]:
        if self._conn is None:
            self._conn, self._client_id = await self._operator.dedicated_connection()
        self._returned.clear()
        try:
            return await self._send_and_receive(streams)
        finally:
            self._returned.set()

    async def _send_and_receive(self, streams: list[str]) -> list[tuple[str, list[StreamEntry]]]:
        await self._conn.send_packed_command(self._conn.pack_commands([read_many_command(
            streams, self._group, self._consumer, count=self._count, block=self._block)]))
        reply = asyncio.ensure_future(self._conn.read_response())
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({reply, changed}, return_when=asyncio.FIRST_COMPLETED)
            if not reply.done():  # the parked set changed: end this read, send a new one
                await asyncio.sleep(SETTLE)
                if not reply.done():
                    await self._unblock()
                await reply
        except BaseException:
            reply.cancel()
            raise
        finally:
            changed.cancel()
        return parse_read_many_reply(reply.result())

    async def _unblock(self) -> None:
        if self._client_id is None:
            return
        try:
            await self._operator.unblock(self._client_id)
        except Exception as exc:  # the read then ends with its BLOCK
            logger.debug("CLIENT UNBLOCK of the shared read failed: {}", exc)

    def _wake_all(self) -> None:
        """After a failed read: every parked subscription reads on its own again."""
        parked, self._parked = self._parked, {}
        for future, _ in parked.values():
            if not future.done():
                future.set_result(None)

    async def _drop(self) -> None:
        conn, self._conn, self._client_id = self._conn, None, None
        if conn is not None:
            await conn.disconnect(nowait=True)


class ParkingSpot:
    """One subscription's place in its lot: whether it is parked now, and what the shared
    read brought it — so the poll loop keeps no parking state of its own."""

    def __init__(self, lot: ParkingLot, stream: str,
                 parked: Callable[[bool], None] | None = None) -> None:
        """``parked(True/False)`` hears when the subscription parks and leaves (the
        ownership keeper: a parked subscription with nothing in hand has nothing to
        renew)."""
        self._lot, self._stream = lot, stream
        self._tell = parked
        self.parked = False

    async def wait(self, polled: Polled) -> Delivered | None:
        """Park until the shared read brings entries (or a stop, or its failure: None)."""
        self._set(True)
        try:
            return await self._lot.park(self._stream, polled)
        finally:
            self._set(False)
            self._lot.leave(self._stream)

    def leave(self) -> None:
        """Wake now, without entries: a stop, or a retry that fell due."""
        self._lot.leave(self._stream)

    def take(self) -> Delivered | None:
        """Entries the shared read delivered after the subscription left."""
        return self._lot.take(self._stream)

    async def settle(self) -> Delivered | None:
        """At stop: the shared read in flight comes back, and what it brought is taken."""
        await self._lot.settle()
        return self._lot.take(self._stream)

    def _set(self, parked: bool) -> None:
        self.parked = parked
        if self._tell is not None:
            self._tell(parked)
