"""One subscription's loop: read a batch, dispatch it, acknowledge it — forever, safely.

The acknowledgement of a finished batch (and its idempotency markers) travels in the same
pipeline as the next XREADGROUP, so a steady stream costs one round trip per batch.

Read offsets: the loop starts by re-reading this consumer's own PEL (id ``0``, then after
the last id seen) so entries it held when it last stopped are handled before new ones;
then it reads ``>``. After a connection error it re-reads its PEL again, since a batch
whose ack was lost is still pending under its name. Entries reclaimed by the recovery job
or due for a retry are injected and handled by the same path, before the next read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from loguru import logger

from ..errors import NoGroupError, StartupError, WrongTypeError
from ..handler import StreamHandler
from ..wire.operator import RedisOperator
from ..wire.readers import ReadResult, group_reader
from ..wire.reconnect import Backoff
from ..wire.records import Renewal, StreamEntry
from ..wire.redis_errors import describe_permanent, describe_unavailable, is_permanent, is_transient
from .acks import Acks
from .dispatch import FRESH, Dispatcher, Until
from .failures import FailurePolicy
from .idempotency import Idempotency
from .losses import LossReport
from .ownership import TRUST, OwnershipKeeper, RenewalThread
from .parking import ParkingLot
from .spec import ListenerSpec
from .stats import ListenerStats

NEW = ">"
OWN_PEL_START = "0"


class Subscription:
    """A live consumer of one group on one stream, feeding one handler."""

    def __init__(self, spec: ListenerSpec, operator: RedisOperator, handler: StreamHandler[Any],
                 renewals: RenewalThread | None = None,
                 setups: asyncio.Semaphore | None = None,
                 lot: ParkingLot | None = None) -> None:
        """``setups``: shared by a container's subscriptions, so many starting at once
        create their groups a few at a time on the pool (see ``ListenerContainer``).
        ``lot``: where this subscription parks while its stream is idle (parking.py)."""
        self.spec = spec
        self._setups = setups
        self._lot = lot
        self.parked = False
        self.stats = ListenerStats()
        self.failure: BaseException | None = None
        """Set when a terminal error (such as WRONGTYPE) ended this subscription."""
        self._operator = operator
        self._renewals = renewals
        self._log = logger.bind(listener=spec.name, stream=spec.stream, group=spec.group,
                                consumer=spec.consumer)
        self._idempotency = (
            Idempotency(spec.idempotency, spec.group,
                        spec.json_field if spec.codec == "json" else None)
            if spec.idempotency else None
        )
        self.losses = LossReport(self.stats, self._log)
        min_idle = spec.pending_scan.min_idle.total_seconds()
        # Without renewals nothing is fenced (a test's container): deliveries are trusted.
        self._acks = Acks(self._send_ack, self.stats, self._log,
                          trust=min_idle * TRUST if renewals is not None else math.inf,
                          losses=self.losses)
        # Unreceived reads span at most the read in flight and one more, plus reclaims.
        self.keeper = (
            OwnershipKeeper(spec.stream, spec.group, spec.consumer, min_idle,
                            2 * spec.batch_size + 100, self._acks, self.losses, self._renew)
            if renewals is not None else None
        )
        self._failures = FailurePolicy(spec, operator, self._acks, self.stats, self._reinject,
                                       self.losses, self._retry_given_up)
        self._dispatcher = Dispatcher(spec, handler, self.stats, self._failures,
                                      self._idempotency, self._acks, self.keeper)
        self._sent_at = 0.0
        """When (``perf_counter``) the read in flight, or the last one, was sent: the
        receipt of what it delivers (Acks)."""
        self._injected: deque[tuple[StreamEntry, int]] = deque()
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self._answered = asyncio.Event()
        """Set once the first read came back (or the subscription ended): only then is
        it known that the user may read the key, and that the key is a stream."""
        self._backoff = Backoff()
        self._cursor = OWN_PEL_START
        self._replayed = 0
        self._reader = group_reader(operator, spec.stream, spec.group, spec.consumer)
        self._read_sent = False
        """A read (carrying the acks in ``Acks.ride``) is on its way and not received."""
        self._waiting_read = False
        self._interrupting = False
        self._said_no_interrupt = False
        self._chores: set[asyncio.Task[None]] = set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def live(self) -> bool:
        """Its group exists and it reads: what the recovery job may work for."""
        return self._started.is_set() and self.failure is None and not self._stop.is_set()

    @property
    def stop_bound(self) -> float:
        """Seconds a stop waits for this subscription before cancelling its handlers:
        ``shutdown_timeout``, plus ``poll_timeout`` where a blocked read cannot be ended
        early (Redis Cluster)."""
        spec = self.spec
        extra = 0.0 if self._reader.interruptible else spec.poll_timeout.total_seconds()
        return spec.shutdown_timeout.total_seconds() + extra

    @property
    def busy(self) -> bool:
        """Handling entries (a long batch is progress, not a stall)."""
        return self._dispatcher.busy

    def overdue(self) -> list[tuple[str | None, float]]:
        """Handlers running past handler_timeout (entry id, seconds)."""
        return self._dispatcher.overdue()

    def request_stop(self) -> None:
        """Stop reading; the batch in hand is finished and acknowledged. A read blocked on
        an empty stream is ended at once instead of waiting out its poll_timeout."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._lot is not None:
            self._lot.leave(self.spec.stream)
        task = asyncio.get_running_loop().create_task(self._interrupt_read())
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)

    async def _interrupt_read(self) -> None:
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

    async def wait_answered(self, timeout: float) -> bool:
        """True once the first read came back, or the subscription ended (then
        ``failure`` says why). The first read is of the own pending list (id 0), which
        never blocks, so this is one round trip after the group exists."""
        try:
            await asyncio.wait_for(self._answered.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def holds(self, entry_id: str) -> bool:
        """Whether this subscription has the entry in hand (handling, waiting for a retry,
        waiting for its ack)."""
        return self._acks.holds(entry_id)

    async def recover(self, entry: StreamEntry, deliveries: int, sent_at: float) -> bool:
        """Handle one entry reclaimed from a consumer that died, and acknowledge it before
        returning — so if it kills this process too, the entries before it are already
        acked and its crash is counted against it alone (see jobs/recovery.py).
        ``sent_at``: when the claim that delivered it was sent (``perf_counter``).

        False when the acknowledgement could not be sent: the caller stops claiming.
        """
        if self.holds(entry.id):
            return True  # already in hand here: never handled twice
        self._acks.hold((entry.id,), sent_at)
        await self._process([entry], {entry.id: deliveries}, until="finished")
        if await self._acks.ack_now():
            return True
        self._log.warning("could not acknowledge a recovered entry; it rides with the next "
                          "read")
        return False

    def _retry_given_up(self, entry_id: str) -> None:
        self._dispatcher.settle(entry_id)

    def _reinject(self, entry: StreamEntry, deliveries: int) -> None:
        """A retry fell due (or a duplicate waits for its twin): handled before the next
        read. A read blocked on a drained stream is ended now, so the retry runs after its
        backoff, not after ``poll_timeout`` (on Cluster, where a blocked read cannot be
        ended, it waits for the read's BLOCK)."""
        self._injected.append((entry, deliveries))
        self._dispatcher.nudge()  # a loop waiting for its keys to move: this one must run
        if self.parked and self._lot is not None:
            self._lot.leave(self.spec.stream)
        if self._waiting_read and self._reader.interruptible and not self._interrupting \
                and not self._stop.is_set():
            # One CLIENT UNBLOCK per blocked read, however many retries fall due meanwhile
            # (a burst of retries must not take a pooled connection each).
            self._interrupting = True
            task = asyncio.get_running_loop().create_task(self._interrupt_read())
            self._chores.add(task)
            task.add_done_callback(self._chores.discard)

    async def run(self) -> None:
        spec = self.spec
        with logger.contextualize(listener=spec.name, stream=spec.stream, group=spec.group,
                                  consumer=spec.consumer):
            self._dispatcher.bind_context()
            try:
                try:
                    await self._ensure_group()
                except NoGroupError:
                    if spec.owns_stream:
                        raise
                    self._log.info("the period's stream is gone; nothing to consume")
                    return
                if self._stop.is_set():
                    return  # stopped while the group was being created: never started
                if self.keeper is not None and self._renewals is not None:
                    self._renewals.register(self.keeper)
                self.stats.last_poll = time.monotonic()  # live from now, not "never polled"
                self._started.set()
                while not self._stop.is_set():
                    try:
                        await self._step()
                    except WrongTypeError:
                        raise
                    except Exception as exc:  # a bug or an unknown server error: never die
                        if is_permanent(exc) and not self.stats.reads:
                            raise  # refused before it ever read: no retry will heal it
                        await self._redis_down(exc)
                # Stopped: a read already sent is received and handled too, then every entry
                # in hand finishes (the container cancels this past shutdown_timeout).
                await self._finish_read_ahead()
                await self._finish_parked()
                await self._dispatcher.idle()
            except WrongTypeError as exc:
                self.failure = exc
                self._log.error("listener stopped: {}", exc)
            except Exception as exc:
                if not is_permanent(exc):
                    raise
                self.failure = StartupError(describe_permanent(exc, self._operator.address))
                self._log.error("listener cannot start: {}", self.failure)
            finally:
                self._answered.set()
                self._dispatcher.close()  # cancels what still runs: those stay pending
                if self._chores:
                    await asyncio.gather(*self._chores, return_exceptions=True)
                await self._acks.close()
                await self._reader.close()
                self._failures.close()
                self.losses.flush()
                if self.keeper is not None and self._renewals is not None:
                    self._renewals.unregister(self.keeper)

    async def _step(self) -> None:
        if self._injected:
            await self._run_injected()
            return
        if self._lot is not None:
            delivered = self._lot.take(self.spec.stream)  # by the shared read, after a stop
            if delivered is not None:
                await self._handle_new(*delivered)
                return
        if not self._read_sent and self._dispatcher.backlogged:
            # ordering_key: a batch waits behind busy keys; read on once they move.
            await self._dispatcher.wait_for_room(self.spec.poll_timeout.total_seconds())
            return
        if not self._read_sent:
            await self._send()
        self._read_sent = False
        try:
            received = await self._receive()
        except NoGroupError as exc:
            if not self.spec.owns_stream:
                self._log.info("{}: the period's stream is gone; subscription ends", exc)
                self._stop.set()
                return
            self._log.warning("{}; recreating it (MKSTREAM)", exc)
            self._acks.dropped()  # a recreated group has no PEL; the lost acks are moot
            await self._ensure_group()
            self._cursor = NEW
            return
        except Exception as exc:
            # Whatever failed, the acks that rode with this read go with the next one.
            self._acks.missed()
            if not is_transient(exc):
                raise
            await self._redis_down(exc)
            return
        entries, sent_at = received.entries, self._sent_at
        if received.ack_error is not None:
            await self._ack_refused(received.ack_error, entries)
            return
        self._acks.arrived(received.acked)
        self._backoff.reset()
        if not self._answered.is_set():
            self._answered.set()
            self._log.info("listening (batch {}, concurrency {}, block {}s)",
                           self.spec.batch_size, self.spec.concurrency,
                           self.spec.poll_timeout.total_seconds())
        self.stats.reads += 1
        self.stats.last_poll = time.monotonic()
        if self._cursor != NEW:
            await self._replay_own_pending(entries, sent_at)
            return
        if not entries:
            if self._may_park():
                await self._park()
            return
        await self._handle_new(entries, sent_at)

    async def _handle_new(self, entries: list[StreamEntry], sent_at: float) -> None:
        """New entries (``>``), read by this subscription or by the shared read, whose
        read was sent at ``sent_at``."""
        self.stats.batch_sizes.observe(len(entries))
        self._acks.hold((e.id for e in entries), sent_at)
        if len(entries) == self.spec.batch_size and not self._stop.is_set() \
                and not self._injected and not self._dispatcher.backlogged:
            # Read ahead: the next read (carrying the acks so far) travels while this batch
            # is handled, so Redis and the handlers work at the same time. Only after a
            # full batch: a partial one means the stream is drained for now.
            await self._send_ahead()
        await self._process(entries, None)

    def _may_park(self) -> bool:
        """Idle: the stream drained (a read blocked for ``poll_timeout`` came back empty),
        nothing in hand or owed, no retry waiting — the shared read can watch it."""
        return (self._lot is not None and not self._stop.is_set() and not self._read_sent
                and not self._injected and not self._acks.in_hand and not self._acks.owed
                and not self._failures.waiting and not self._dispatcher.busy)

    async def _park(self) -> None:
        """Close this subscription's connection and wait on the shared read; the entries
        it brings are handled as a read of our own would be (then reading goes on here)."""
        assert self._lot is not None
        await self._reader.close()
        self.parked = True
        if self.keeper is not None:
            self.keeper.parked = True
        try:
            delivered = await self._lot.park(self.spec.stream, self._polled)
        finally:
            self.parked = False
            if self.keeper is not None:
                self.keeper.parked = False
            self._lot.leave(self.spec.stream)
        if delivered:  # None: the shared read failed — our own next read tells if it was us
            await self._handle_new(*delivered)

    def _polled(self) -> None:
        self.stats.last_poll = time.monotonic()

    async def _finish_parked(self) -> None:
        """At stop: what the shared read delivered for this stream is handled too."""
        if self._lot is None:
            return
        await self._lot.settle()
        delivered = self._lot.take(self.spec.stream)
        if delivered is not None:
            entries, sent_at = delivered
            self._acks.hold((e.id for e in entries), sent_at)
            await self._process(entries, None)

    async def _ack_refused(self, error: Exception, entries: list[StreamEntry]) -> None:
        """The server refused the XACK (an ACL change, say) but delivered the read: handle
        the entries, keep every ack for the next round trip, and back off."""
        self._acks.missed()
        self.stats.redis_errors += 1
        delay = self._backoff.next_delay()
        reason = describe_permanent(error) if is_permanent(error) else str(error)
        self._log.error("acknowledgement refused ({}); entries stay pending and the ack is "
                        "retried in {:.2f}s", reason, delay)
        if entries:
            if self._cursor != NEW:
                await self._replay_own_pending(entries, self._sent_at)
            else:
                self._acks.hold((e.id for e in entries), self._sent_at)
                await self._process(entries, None)
        await self._backoff.wait(delay, self._stop)

    async def _send(self) -> None:
        spec = self.spec
        ack, markers = self._acks.ride()
        # The own PEL is re-read one entry at a time: each is handled and its ack rides
        # ahead of the next read, so an entry that kills the process is the only one whose
        # delivery count grows with its crashes (its batch mates are not re-delivered).
        count = spec.batch_size if self._cursor == NEW else 1
        self._sent_at = time.perf_counter()
        try:
            await self._reader.send(ack, markers, self._marker_ttl, count=count,
                                    block=spec.poll_timeout, entry_id=self._cursor)
        except BaseException:
            self._acks.missed()
            raise
        self._read_sent = True

    async def _send_ahead(self) -> None:
        try:
            await self._send()
        except Exception as exc:
            if not is_transient(exc):
                raise
            # The batch in hand is still handled; the next step meets the error again.
            self._log.debug("read-ahead not sent: {}", exc)

    async def _receive(self) -> ReadResult:
        """Receive the read. Successes owed meanwhile — finished before, or by workers
        during the read — are acked on their own if the read is slow to come back
        (blocked on a drained stream): see ``Acks.reading``."""
        self._acks.reading(True)
        self._waiting_read = True
        try:
            return await self._reader.receive()
        finally:
            self._waiting_read = self._interrupting = False
            self._acks.reading(False)

    def _send_ack(self, ids: list[str], markers: list[str]) -> Any:
        """An XACK (and markers) on its own round trip: side acks, recovery, the stop."""
        return self._operator.ack(self.spec.stream, self.spec.group, ids, markers,
                                  self._marker_ttl)

    async def _finish_read_ahead(self) -> None:
        """At stop: a read already sent may deliver entries to us; handle them too."""
        if not self._read_sent:
            return
        self._read_sent = False
        try:
            received = await self._reader.receive()
        except Exception as exc:
            self._acks.missed()
            self._log.warning("read-ahead failed at stop ({}); its entries stay pending", exc)
            return
        entries = received.entries
        if received.ack_error is not None:
            self._acks.missed()
        else:
            self._acks.arrived(received.acked)
        if entries:
            self._acks.hold((e.id for e in entries), self._sent_at)
            await self._process(entries, None)

    async def _run_injected(self) -> None:
        batch: list[StreamEntry] = []
        counts: dict[str, int] = {}
        while self._injected and len(batch) < self.spec.batch_size:
            entry, deliveries = self._injected.popleft()
            batch.append(entry)
            counts[entry.id] = deliveries
        await self._process(batch, counts)

    async def _process(self, entries: list[StreamEntry],
                       deliveries: Mapping[str, int] | None, until: Until = "started") -> None:
        if self._idempotency is not None:
            try:
                entries = await self._skip_done(entries)
            except Exception:
                self._abandon(entries)
                raise
        if entries:
            await self._dispatcher.dispatch(entries, deliveries, until)
            self.stats.last_poll = time.monotonic()  # alive: a long batch is progress too

    def _renew(self, ids: list[str], after: str, ahead: int) -> Awaitable[Renewal]:
        """The keeper's confirmation before a start it cannot vouch for (ownership.py)."""
        spec = self.spec
        return self._operator.renew_owned(spec.stream, spec.group, spec.consumer, ids,
                                          after=after, ahead=ahead)

    def _abandon(self, entries: Sequence[StreamEntry]) -> None:
        """A batch read but not dispatched (Redis failed in between): stop holding it, so
        the re-read of the own PEL that follows the error picks it up again."""
        self._acks.release(e.id for e in entries)
        self._cursor = OWN_PEL_START

    async def _skip_done(self, entries: list[StreamEntry]) -> list[StreamEntry]:
        """Entries whose business key this group already handled are acked, not handled.

        "Already handled" is a marker in Redis, or one set by a success whose SET is still
        on its way there (waiting for, or riding in, the next ack pipeline). A second entry
        with the same key in one batch waits until the first has an outcome.
        """
        assert self._idempotency is not None
        unconfirmed = self._acks.unconfirmed_markers()
        markers = [self._idempotency.marker_for(e.fields) for e in entries]
        found = iter(await self._operator.exists_many([m for m in markers if m is not None]))
        todo: list[StreamEntry] = []
        skip: list[str] = []
        first: set[str] = set()
        for entry, marker in zip(entries, markers, strict=True):  # stream order is kept
            if marker is None:
                todo.append(entry)
            elif next(found) or marker in unconfirmed:
                skip.append(entry.id)
            elif marker in first:
                self._injected.append((entry, FRESH))  # after its twin's outcome
            else:
                first.add(marker)
                todo.append(entry)
        if skip:
            self.stats.deduplicated += len(skip)
            self._acks.settled(skip)
            self._log.debug("{} entries already handled (idempotency key); acking them",
                            len(skip))
        return todo

    async def _replay_own_pending(self, entries: list[StreamEntry], sent_at: float) -> None:
        if not entries:
            self._cursor = NEW
            if self._replayed:
                self._log.info("handled {} entries from own pending list, one at a time",
                               self._replayed)
                self._replayed = 0
            return
        self._cursor = entries[-1].id
        # Entries already in hand (being handled, or handled and awaiting their ack) are
        # not handled twice just because the PEL still lists them.
        fresh = [e for e in entries if not self.holds(e.id)]
        gone = [e.id for e in fresh if e.deleted]
        live = [e for e in fresh if not e.deleted]
        if gone:
            # Trimmed or deleted while pending: nothing left to handle; the ack clears them.
            self.losses.deleted(gone)
            self._acks.settled(gone)
        if live:
            self._replayed += len(live)
            self._log.debug("re-reading {} from own pending list (delivery count grows)",
                            ", ".join(e.id for e in live))
            try:
                counts = await self._operator.delivery_counts(self.spec.stream, self.spec.group,
                                                              [e.id for e in live])
            except Exception:
                self._abandon(live)
                raise
            self._acks.hold((e.id for e in live), sent_at)
            # Finished before the next read, whose pipeline carries its ack first.
            await self._process(live, counts, until="finished")

    @property
    def _marker_ttl(self) -> Any:
        return self._idempotency.ttl if self._idempotency is not None else None

    async def _ensure_group(self) -> None:
        spec = self.spec
        while not self._stop.is_set():
            try:
                async with self._setups or contextlib.nullcontext():
                    created = await self._operator.create_group(
                        spec.stream, spec.group, spec.start_id, mkstream=spec.owns_stream)
                if created:
                    self._log.info("created group at {}", spec.start_id)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                await self._redis_down(exc)

    async def _redis_down(self, exc: BaseException) -> None:
        """Back off and try again: one line for what heals (or may: a permission taken
        away while running can be given back), a traceback only for the unexpected."""
        self.stats.redis_errors += 1
        self._cursor = OWN_PEL_START
        delay = self._backoff.next_delay()
        address = self._operator.address
        if is_transient(exc):
            self._log.warning("{}; retrying in {:.2f}s", describe_unavailable(exc, address),
                              delay)
        elif is_permanent(exc):
            self._log.error("{}; retrying in {:.2f}s", describe_permanent(exc, address), delay)
        else:  # a bug or an unknown server error: never die, but show everything
            self._log.opt(exception=exc).error("poll loop error: {}; retrying in {:.2f}s",
                                               exc, delay)
        await self._backoff.wait(delay, self._stop)
