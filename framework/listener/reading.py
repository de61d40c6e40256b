"""The one read of a subscription that may be on its way: sent (with the acks riding on
it), not yet received — the read-ahead — and its interruption.

The poll loop sends its next XREADGROUP before it handles the batch in hand, so Redis and
the handlers work at the same time; this object is that read's state, so the loop carries
no flags for it: whether one is on its way (``in_flight``), when it was sent (the receipt
of what it delivers, listener/ownership.py), whether the loop waits on it, and whether a
CLIENT UNBLOCK was already sent to end it early — one per blocked read, however many
retries fall due meanwhile (a burst must not take a pooled connection each).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from time import perf_counter
from typing import TYPE_CHECKING

from ..wire.readers import GroupReader, ReadResult
from ..wire.redis_errors import describe_permanent, is_permanent
from .acks import Acks

if TYPE_CHECKING:
    from loguru import Logger


class ReadInFlight:
    def __init__(self, reader: GroupReader, acks: Acks, log: Logger) -> None:
        self._reader = reader
        self._acks = acks
        self._log = log
        self.in_flight = False
        """A read (carrying the acks of ``Acks.ride``) is on its way and not received."""
        self.sent_at = 0.0
        """When (``perf_counter``) the read in flight, or the last one, was sent."""
        self._waiting = False
        self._interrupting = False
        self._said_no_interrupt = False
        self._chores: set[asyncio.Task[None]] = set()

    @property
    def interruptible(self) -> bool:
        """Whether a blocked read can be ended early (not on Redis Cluster)."""
        return self._reader.interruptible

    async def send(self, entry_id: str, count: int, block: timedelta,
                   marker_ttl: timedelta | None) -> None:
        """Send the acks owed and the next read; on failure they are owed again."""
        ack, markers = self._acks.ride()
        self.sent_at = perf_counter()
        try:
            await self._reader.send(ack, markers, marker_ttl, count=count, block=block,
                                    entry_id=entry_id)
        except BaseException:
            self._acks.missed()
            raise
        self.in_flight = True

    async def receive(self) -> ReadResult:
        """Receive the read. Successes owed meanwhile — finished before, or by workers
        during the read — are acked on their own if the read is slow to come back
        (blocked on a drained stream): see ``Acks.reading``. On failure the caller
        decides what becomes of the acks that rode with it (owed again, or moot when the
        group is gone)."""
        self.in_flight = False
        self._acks.reading(True)
        self._waiting = True
        try:
            return await self._reader.receive()
        finally:
            self._waiting = self._interrupting = False
            self._acks.reading(False)

    def end_blocked_read(self) -> None:
        """A retry fell due: end the read the loop is blocked on (once per read)."""
        if self._waiting and self._reader.interruptible and not self._interrupting:
            self._interrupting = True
            self.interrupt()

    def interrupt(self) -> None:
        """End a read blocked on an empty stream now, in the background; where that cannot
        be done (Cluster, or CLIENT UNBLOCK not granted) the read ends with its BLOCK."""
        task = asyncio.get_running_loop().create_task(self._interrupt())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _interrupt(self) -> None:
        try:
            await self._reader.interrupt()
        except Exception as exc:  # then the read simply ends when its BLOCK expires
            if is_permanent(exc) and not self._said_no_interrupt:
                # Said once: a user without CLIENT UNBLOCK gets retries late, not silently.
                self._said_no_interrupt = True
                self._log.warning("cannot interrupt the blocked read ({}): a retry waits up to "
                                  "poll_timeout; grant +client|unblock (docs/operations.md, "
                                  "Least privilege)", describe_permanent(exc))
            else:
                self._log.debug("could not interrupt the blocked read: {}", exc)

    async def close(self) -> None:
        try:
            if self._chores:
                await asyncio.gather(*self._chores, return_exceptions=True)
        finally:
            await self._reader.close()
