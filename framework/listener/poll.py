"""One subscription's loop: read a batch, dispatch it, acknowledge it — forever, safely.

The acknowledgement of a finished batch (and its idempotency markers) travels in the same
pipeline as the next XREADGROUP, so a steady stream costs one round trip per batch; a full
batch sends that read ahead before it is handled (reading.py). Where the loop reads from —
its own pending list first, then new entries — is offsets.py's pure rule; where it waits
when its stream is idle is its parking spot (parking.py). Entries reclaimed by the recovery
job or due for a retry are injected and handled by the same path, before the next read.

The loop, top to bottom (``_step``): what was injected first; what the shared idle read
delivered; room for a batch held back by busy keys (``ordering_key``); else one read.
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

from ..config.models import LEASE_READ_MARGIN
from ..errors import NoGroupError, StartupError, WrongTypeError
from ..handler import BatchHandler, StreamHandler
from ..wire.ids import waited
from ..wire.operator import RedisOperator
from ..wire.readers import group_reader
from ..wire.reconnect import ReconnectBackoff
from ..wire.records import Renewal, StreamEntry
from ..wire.redis_errors import (
    READ_ONLY_HINT,
    describe_permanent,
    describe_unavailable,
    is_permanent,
    is_transient,
    read_only,
)
from .acks import Acks
from .batches import BatchDispatcher
from .dispatch import FRESH, Dispatcher, Until
from .failures import FailurePolicy
from .idempotency import Idempotency, sort_batch
from .losses import LossReport
from .losses import entries as count_of
from .offsets import ReadOffset
from .ownership import TRUST, OwnershipKeeper, RenewalThread
from .parking import ParkingLot, ParkingSpot
from .reading import ReadInFlight
from .spec import ListenerSpec
from .stats import ListenerStats
from .tenure import Tenure


class Subscription:
    """A live consumer of one group on one stream, feeding one handler."""

    def __init__(self, spec: ListenerSpec, operator: RedisOperator, handler: StreamHandler[Any],
                 renewals: RenewalThread | None = None,
                 setups: asyncio.Semaphore | None = None,
                 lot: ParkingLot | None = None, tenure: Tenure | None = None,
                 stats: ListenerStats | None = None) -> None:
        """``setups``: shared by a container's subscriptions, so many starting at once
        create their groups a few at a time on the pool (see ``ListenerContainer``).
        ``lot``: where this subscription parks while its stream is idle (parking.py).
        ``tenure``: the lease of the partition it reads, when partitions are leased
        (tenure.py): it reads, starts and acks only while that lease is trusted. A leased
        subscription never parks: the shared read would read on for a partition whose
        lease lapsed. ``stats``: counters kept from an earlier subscription of the same
        name (a partition handed away and back): totals outlive hand-overs."""
        self.spec = spec
        self.tenure = tenure
        self._read_window = (spec.poll_timeout + LEASE_READ_MARGIN).total_seconds()
        self._setups = setups
        self.stats = stats if stats is not None else ListenerStats()
        self.failure: BaseException | None = None
        self.last_error: str | None = None
        """What the last failed read met (one line), until a read succeeds: /healthz says
        it beside "has not polled"."""
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
                          losses=self.losses, tenure=tenure)
        # Unreceived reads span at most the read in flight and one more, plus reclaims.
        self.keeper = (
            OwnershipKeeper(spec.stream, spec.group, spec.consumer, min_idle,
                            2 * spec.batch_size + 100, self._acks, self.losses, self._renew)
            if renewals is not None else None
        )
        self._spot = (ParkingSpot(lot, spec.stream, self._parked)
                      if lot is not None and tenure is None else None)
        self._failures = FailurePolicy(spec, operator, self._acks, self.stats, self._reinject,
                                       self.losses, self._retry_given_up, tenure)
        parts = (self.stats, self._failures, self._idempotency, self._acks, self.keeper, tenure)
        self._dispatcher = (BatchDispatcher(spec, handler, *parts)
                            if isinstance(handler, BatchHandler)
                            else Dispatcher(spec, handler, *parts))
        self._read = ReadInFlight(group_reader(operator, spec.stream, spec.group,
                                               spec.consumer), self._acks, self._log)
        self._offset = ReadOffset()
        self._injected: deque[tuple[StreamEntry, int]] = deque()
        self._keyed: dict[str, str] = {}
        """Idempotency marker → the id of the entry of that key last given to the
        dispatcher (stale once that entry left the hand: checked with ``holds``)."""
        self._twins: dict[str, list[StreamEntry]] = {}
        """Entries waiting for the outcome of their key's entry in hand (``_keyed``)."""
        self._stop = asyncio.Event()
        self._handing_over = False
        self._started = asyncio.Event()
        self._answered = asyncio.Event()
        """Set once the first read came back (or the subscription ended): only then is
        it known that the user may read the key, and that the key is a stream."""
        self._backoff = ReconnectBackoff(cap=operator.reconnect_cap)

    # -- what others ask of it -----------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def live(self) -> bool:
        """Its group exists and it reads (and its partition's lease, if leased, is
        trusted): what the recovery job may work for."""
        return (self._started.is_set() and self.failure is None and not self._stop.is_set()
                and (self.tenure is None or self.tenure.trusted()))

    @property
    def replaying(self) -> bool:
        """Still reading its own pending list (entries a previous run of this consumer
        was given), one at a time: those are this subscription's to handle, so the
        recovery job leaves it alone meanwhile."""
        return self._offset.replaying

    @property
    def parked(self) -> bool:
        """Waiting on the shared read of its idle group (parking.py)."""
        return self._spot is not None and self._spot.parked

    @property
    def stop_bound(self) -> float:
        """Seconds a stop waits for this subscription before cancelling its handlers:
        ``shutdown_timeout``, plus ``poll_timeout`` where a blocked read cannot be ended
        early (Redis Cluster)."""
        spec = self.spec
        extra = 0.0 if self._read.interruptible else spec.poll_timeout.total_seconds()
        return spec.shutdown_timeout.total_seconds() + extra

    @property
    def busy(self) -> bool:
        """Handling entries (a long batch is progress, not a stall)."""
        return self._dispatcher.busy

    def overdue(self) -> list[tuple[str | None, float]]:
        """Handlers running past handler_timeout (entry id, seconds)."""
        return self._dispatcher.overdue()

    def holds(self, entry_id: str) -> bool:
        """Whether this subscription has the entry in hand (handling, waiting for a retry,
        waiting for its ack)."""
        return self._acks.holds(entry_id)

    async def wait_answered(self, timeout: float) -> bool:
        """True once the first read came back, or the subscription ended (then
        ``failure`` says why). The first read is of the own pending list (id 0), which
        never blocks, so this is one round trip after the group exists."""
        try:
            await asyncio.wait_for(self._answered.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def request_handover(self) -> None:
        """Stop for a partition's hand-over (partitions/membership.py): only the handlers
        running now finish; what has not started — queued, waiting behind its key, or on
        its way in the read-ahead — stays pending for the next owner, which claims it and
        handles it oldest first. A hand-over then takes about one handler's time, not a
        whole hand's."""
        self._handing_over = True
        self._acks.release(self._dispatcher.drop_queued())
        self.request_stop()

    async def _leave_unstarted(self) -> None:
        """The read-ahead's reply is received for the acks that rode on it; its entries
        are left pending (delivered to this consumer: the next owner claims them)."""
        await self._finish_read_ahead(handle=False)
        self._acks.release(self._dispatcher.drop_queued())

    def request_stop(self) -> None:
        """Stop reading; the batch in hand is finished and acknowledged. A read blocked on
        an empty stream is ended at once instead of waiting out its poll_timeout."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._spot is not None:
            self._spot.leave()
        self._read.interrupt()

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

    # -- the loop ------------------------------------------------------------------------
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
                if self._handing_over:
                    await self._leave_unstarted()
                else:
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
                try:
                    await self._acks.close()
                finally:  # even when a forced stop cancels the acks: the socket is closed
                    await self._read.close()
                self._failures.close()
                self.losses.flush()
                if self.keeper is not None and self._renewals is not None:
                    self._renewals.unregister(self.keeper)

    async def _step(self) -> None:
        if self._twins:
            self._release_twins()
        tenure = self.tenure
        if tenure is not None and not tenure.trusted(self._read_window):
            await self._fenced(tenure)
        elif self._injected:
            await self._run_injected()
        elif self._spot is not None and (delivered := self._spot.take()) is not None:
            await self._handle_new(*delivered)  # by the shared read, after a stop
        elif not self._read.in_flight and self._dispatcher.backlogged:
            # ordering_key: a batch waits behind busy keys; read on once they move.
            await self._dispatcher.wait_for_room(self.spec.poll_timeout.total_seconds())
        else:
            await self._read_once()

    async def _read_once(self) -> None:
        if not self._read.in_flight:
            await self._send()
        try:
            received = await self._read.receive()
        except NoGroupError as exc:
            await self._group_gone(exc)
            return
        except Exception as exc:
            self._acks.missed()  # whatever failed, the acks that rode with it go next time
            if not is_transient(exc):
                raise
            await self._redis_down(exc)
            return
        entries, sent_at = received.entries, self._read.sent_at
        if received.ack_error is not None:
            await self._ack_refused(received.ack_error, entries)
            return
        self._acks.arrived(received.acked)
        self._backoff.reset()
        self._read_back()
        if self._offset.replaying:
            await self._replay_own_pending(entries, sent_at)
        elif entries:
            await self._handle_new(entries, sent_at)
        elif self._may_park():
            await self._park()

    def _read_back(self) -> None:
        """A read came back: the listener is live (and says so, the first time)."""
        self.last_error = None
        if not self._answered.is_set():
            self._answered.set()
            self._log.info("listening (batch {}, concurrency {}, block {}s)",
                           self.spec.batch_size, self.spec.concurrency,
                           self.spec.poll_timeout.total_seconds())
        self.stats.reads += 1
        self.stats.last_poll = time.monotonic()

    async def _group_gone(self, exc: NoGroupError) -> None:
        if not self.spec.owns_stream:
            self._log.info("{}: the period's stream is gone; subscription ends", exc)
            self._stop.set()
            return
        # Gone while read: deleted, or lost in a failover (the new primary never had it).
        # Not a new group: it is recreated from the stream's start whatever start_id says,
        # so what it had not delivered yet is handled, never skipped (at-least-once).
        try:
            length = await self._operator.xlen(self.spec.stream)
        except Exception:
            length = -1
        self._log.warning("{}: it vanished while read (deleted, or lost in a failover: the "
                          "new primary never had it); recreating it from the stream's start: "
                          "{} in the stream {} handled again rather than skipped "
                          "(at-least-once; idempotency skips those it marked)", exc,
                          f"{length} entries" if length >= 0 else "the entries",
                          "are" if length != 1 else "is")
        self._acks.dropped()  # a recreated group has no PEL; the lost acks are moot
        await self._ensure_group("0")
        self._offset.recreated()

    async def _handle_new(self, entries: list[StreamEntry], sent_at: float) -> None:
        """New entries (``>``), read by this subscription or by the shared read, whose
        read was sent at ``sent_at``."""
        stats = self.stats
        stats.batch_sizes.observe(len(entries))
        stats.delivery_latency.observe(waited(entries[0].id, time.time()))
        self._acks.hold((e.id for e in entries), sent_at)
        if len(entries) == self.spec.batch_size and not self._stop.is_set() \
                and not self._injected and not self._dispatcher.backlogged:
            # Read ahead: the next read (carrying the acks so far) travels while this batch
            # is handled, so Redis and the handlers work at the same time. Only after a
            # full batch: a partial one means the stream is drained for now.
            await self._send_ahead()
        await self._process(entries, None)

    async def _send(self) -> None:
        spec = self.spec
        await self._read.send(self._offset.cursor, self._offset.count(spec.batch_size),
                              spec.poll_timeout, self._marker_ttl)

    async def _fenced(self, tenure: Tenure) -> None:
        """The lease does not cover a read now: wait for its renewal; once it is lost,
        stop (the membership loop then lets this subscription go)."""
        if tenure.lost:
            self._log.warning("the partition's lease was lost (epoch {}): stopped reading; "
                              "its pending entries are the new owner's", tenure.epoch)
            self.request_stop()
            return
        await tenure.renewed(0.25)

    async def _send_ahead(self) -> None:
        if self.tenure is not None and not self.tenure.trusted(self._read_window):
            return  # the read would end past the lease's trusted window
        try:
            await self._send()
        except Exception as exc:
            if not is_transient(exc):
                raise
            # The batch in hand is still handled; the next step meets the error again.
            self._log.debug("read-ahead not sent: {}", exc)

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
            if self._offset.replaying:
                await self._replay_own_pending(entries, self._read.sent_at)
            else:
                self._acks.hold((e.id for e in entries), self._read.sent_at)
                await self._process(entries, None)
        await self._backoff.wait(delay, self._stop)

    async def _finish_read_ahead(self, handle: bool = True) -> None:
        """At stop: a read already sent may deliver entries to us; handle them too (not at
        a hand-over: ``handle=False`` leaves them pending) — unless the partition's lease
        is lost: whatever it brings is the new owner's, and its reply may never come (the
        connection that lost the lease may be dead)."""
        if not self._read.in_flight:
            return
        if self.tenure is not None and self.tenure.lost:
            self._acks.missed()
            return
        try:
            received = await self._read.receive()
        except Exception as exc:
            self._acks.missed()
            self._log.warning("read-ahead failed at stop ({}); its entries stay pending", exc)
            return
        if received.ack_error is not None:
            self._acks.missed()
        else:
            self._acks.arrived(received.acked)
        if received.entries and handle:
            self._acks.hold((e.id for e in received.entries), self._read.sent_at)
            await self._process(received.entries, None)

    # -- idle: the shared read -----------------------------------------------------------
    def _may_park(self) -> bool:
        """Idle: the stream drained (a read blocked for ``poll_timeout`` came back empty),
        nothing in hand or owed, no retry waiting — the shared read can watch it."""
        return (self._spot is not None and not self._stop.is_set()
                and not self._read.in_flight and not self._injected and not self._twins
                and not self._acks.in_hand and not self._acks.owed
                and not self._failures.waiting and not self._dispatcher.busy)

    async def _park(self) -> None:
        """Close this subscription's connection and wait on the shared read; the entries
        it brings are handled as a read of our own would be (then reading goes on here)."""
        assert self._spot is not None
        await self._read.close()
        if not self._may_park():
            return  # a stop or a due retry came while the connection closed: never park
        delivered = await self._spot.wait(self._polled)
        if delivered:  # None: the shared read failed — our own next read tells if it was us
            await self._handle_new(*delivered)

    def _parked(self, parked: bool) -> None:
        if self.keeper is not None:
            self.keeper.parked = parked

    def _polled(self) -> None:
        self.stats.last_poll = time.monotonic()

    async def _finish_parked(self) -> None:
        """At stop: what the shared read delivered for this stream is handled too."""
        if self._spot is None:
            return
        delivered = await self._spot.settle()
        if delivered is not None:
            entries, sent_at = delivered
            self._acks.hold((e.id for e in entries), sent_at)
            await self._process(entries, None)

    # -- what is not read: retries, the own pending list ---------------------------------
    def _retry_given_up(self, entry_id: str) -> None:
        self._dispatcher.settle(entry_id)

    def _reinject(self, entry: StreamEntry, deliveries: int) -> None:
        """A retry fell due (or a duplicate waits for its twin): handled before the next
        read. A read blocked on a drained stream is ended now, so the retry runs after its
        backoff, not after ``poll_timeout`` (on Cluster, where a blocked read cannot be
        ended, it waits for the read's BLOCK)."""
        self._injected.append((entry, deliveries))
        self._dispatcher.nudge()  # a loop waiting for its keys to move: this one must run
        if self.parked and self._spot is not None:
            self._spot.leave()
        if not self._stop.is_set():
            self._read.end_blocked_read()

    async def _run_injected(self) -> None:
        batch: list[StreamEntry] = []
        counts: dict[str, int] = {}
        while self._injected and len(batch) < self.spec.batch_size:
            entry, deliveries = self._injected.popleft()
            batch.append(entry)
            counts[entry.id] = deliveries
        await self._process(batch, counts)

    async def _replay_own_pending(self, entries: list[StreamEntry], sent_at: float) -> None:
        """A read of the own pending list (offsets.py): entries still in hand are not
        handled twice just because the PEL lists them; deleted ones are settled; the rest
        are handled one at a time, each finished before the next read carries its ack."""
        fresh = [e for e in entries if not self.holds(e.id)]
        gone = [e.id for e in fresh if e.deleted]
        live = [e for e in fresh if not e.deleted]
        replayed = self._offset.replay(entries, len(live))
        if replayed:
            self._log.info("handled {} from own pending list, one at a time",
                           count_of(replayed))
        if gone:
            # Trimmed or deleted while pending: nothing left to handle; the ack clears them.
            self.losses.deleted(gone)
            self._acks.settled(gone)
        if not live:
            return
        self._log.debug("re-reading {} from own pending list (delivery count grows)",
                        ", ".join(e.id for e in live))
        # In hand before the round trip below: a recovery run already under way may claim
        # these same entries (idle past min_idle, ours) meanwhile, and must find them held
        # here, or both would handle them at once.
        self._acks.hold((e.id for e in live), sent_at)
        try:
            counts = await self._operator.delivery_counts(self.spec.stream, self.spec.group,
                                                          [e.id for e in live])
        except Exception:
            self._abandon(live)
            raise
        await self._process(live, counts, until="finished")

    # -- handing entries over ------------------------------------------------------------
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

    async def _skip_done(self, entries: list[StreamEntry]) -> list[StreamEntry]:
        """Entries whose business key this group already handled are acked, not handled
        (idempotency.py's ``sort_batch``); a second entry of a key waits for the first."""
        assert self._idempotency is not None
        markers = [self._idempotency.marker_for(e.fields) for e in entries]
        found = await self._operator.markers_handled(
            [m for m in markers if m is not None],
            [e.id for e, m in zip(entries, markers, strict=True) if m is not None])
        keyed, holds = self._keyed, self._acks.holds
        in_hand = {m: i for m in markers if m is not None
                   and (i := keyed.get(m)) is not None and holds(i)}
        batch = sort_batch(entries, markers, found, self._acks.unconfirmed_markers(),
                           in_hand)
        marker_of = {e.id: m for e, m in zip(entries, markers, strict=True) if m is not None}
        for entry in batch.later:  # its key's entry is in hand: it waits for the outcome
            self._twins.setdefault(marker_of[entry.id], []).append(entry)
        for entry in batch.todo:
            marker = marker_of.get(entry.id)
            if marker is not None:
                keyed[marker] = entry.id
        if len(keyed) > 4 * (len(self._acks.in_hand) + 256):  # forget the settled ones
            self._keyed = {m: i for m, i in keyed.items() if holds(i)}
        if batch.done:
            self.stats.deduplicated += len(batch.done)
            self._acks.settled(batch.done)
            self._log.debug("{} already handled (idempotency key); acking them",
                            count_of(len(batch.done)))
        return batch.todo

    def _release_twins(self) -> None:
        """Entries whose key's entry left the hand (acked, dead-lettered, given up) go
        through the idempotency check again: skipped if it succeeded, handled if not."""
        holds = self._acks.holds
        for marker in [m for m in self._twins
                       if (i := self._keyed.get(m)) is None or not holds(i)]:
            self._keyed.pop(marker, None)
            self._injected.extend((entry, FRESH) for entry in self._twins.pop(marker))

    def _abandon(self, entries: Sequence[StreamEntry]) -> None:
        """A batch read but not dispatched (Redis failed in between): stop holding it, so
        the re-read of the own PEL that follows the error picks it up again."""
        self._acks.release(e.id for e in entries)
        self._offset.restart()

    # -- Redis ---------------------------------------------------------------------------
    def _send_ack(self, ids: list[str], markers: list[str]) -> Any:
        """An XACK (and markers) on its own round trip: side acks, recovery, the stop."""
        return self._operator.ack(self.spec.stream, self.spec.group, ids, markers,
                                  self._marker_ttl)

    def _renew(self, ids: list[str], after: str, ahead: int) -> Awaitable[Renewal]:
        """The keeper's confirmation before a start it cannot vouch for (ownership.py)."""
        spec = self.spec
        return self._operator.renew_owned(spec.stream, spec.group, spec.consumer, ids,
                                          after=after, ahead=ahead)

    @property
    def _marker_ttl(self) -> Any:
        return self._idempotency.ttl if self._idempotency is not None else None

    async def _ensure_group(self, start_id: str | None = None) -> None:
        """Create the group if missing: at ``start_id`` (a vanished group: "0"), else the
        listener's ``start_id``."""
        spec = self.spec
        start = start_id or spec.start_id
        while not self._stop.is_set():
            try:
                async with self._setups or contextlib.nullcontext():
                    created = await self._operator.create_group(
                        spec.stream, spec.group, start, mkstream=spec.owns_stream)
                if created:
                    self._log.info("created group at {}", start)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                await self._redis_down(exc)

    async def _redis_down(self, exc: BaseException) -> None:
        """Back off and try again: one line for what heals (or may: a permission taken
        away while running can be given back), a traceback only for the unexpected."""
        self.stats.redis_errors += 1
        self._offset.restart()
        delay = self._backoff.next_delay()
        address = self._operator.address
        if is_transient(exc):
            self.last_error = describe_unavailable(exc, address)
            self._log.warning("{}; retrying in {:.2f}s", self.last_error, delay)
            if read_only(exc) and not self._operator.said_read_only:
                self._operator.said_read_only = True
                self._log.warning(READ_ONLY_HINT)
        elif is_permanent(exc):
            self.last_error = describe_permanent(exc, address)
            self._log.error("{}; retrying in {:.2f}s", self.last_error, delay)
        else:  # a bug or an unknown server error: never die, but show everything
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._log.opt(exception=exc).error("poll loop error: {}; retrying in {:.2f}s",
                                               exc, delay)
        await self._backoff.wait(delay, self._stop)

