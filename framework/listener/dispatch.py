"""Run entries through one handler, at most ``concurrency`` at a time, none unbounded.

Successes go to :class:`Acks` (with their idempotency markers), which owes their XACK;
every other outcome goes to the :class:`FailurePolicy`, which retries, leaves pending or
dead-letters — nothing is acknowledged unhandled.

Handlers never run in the poll task: up to ``concurrency`` long-lived worker tasks take
entries from a queue, and the poll loop only waits until every entry of its batch has
*started*. So a slow or hung handler holds one worker, never the listener — the others
keep taking entries and the loop keeps reading. (An earlier design ran cheap handlers
inline in the poll task; the first handler that awaited and never returned stalled the
whole listener.) A batch of cheap handlers costs one worker wake-up and one wake-up of the
poll task — two event-loop turns, whatever the batch size.

Every handler runs under ``handler_timeout`` (see timeouts.py); a sync handler runs in a
daemon thread that is abandoned when it overruns (see threads.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from itertools import chain, repeat
from time import monotonic, perf_counter
from typing import Any, Literal, NamedTuple

from loguru import logger

from ..codecs import codec_for
from ..errors import HandlerTimeout, PayloadError
from ..handler import StreamHandler
from ..message import Message
from ..middleware.chain import chained
from ..observability.logs import ENTRY_ID, install_entry_context
from ..observability.tracing import ConsumerTracer, without_trace_fields
from ..wire.decoding import undecodable
from ..wire.records import StreamEntry
from .acks import Acks
from .dead_letters import REASON_INVALID_PAYLOAD, REASON_UNDECODABLE
from .failures import FailurePolicy
from .idempotency import Idempotency
from .ordering import KeyOrder
from .ownership import OwnershipKeeper
from .retry import exhausted
from .spec import ListenerSpec
from .stats import ListenerStats
from .tenure import Tenure, held
from .threads import HandlerThreads
from .timeouts import Running, Watchdog

FRESH = 1
Until = Literal["started", "finished"]
_RUNNING: contextvars.ContextVar[Running] = contextvars.ContextVar("streamboot_running")
"""The worker's :class:`Running`, for the end of a middleware chain (a sync handler's
thread job is recorded there, so a timeout can abandon it)."""


class Rejection(NamedTuple):
    """An entry that cannot become the handler's payload, and the dead letter's reason."""

    error: PayloadError
    reason: str

_Job = tuple[StreamEntry, int, "asyncio.Future[None] | None"]


def _plain_text(entries: Sequence[StreamEntry]) -> bool:
    """Every entry's names and values ASCII, no name twice in any: the whole read can be
    built as it is. One ``join`` and one C-level ``isascii`` for the read, and two sums:
    a name given twice makes an entry's raw list longer than twice its fields (never
    shorter), so the sums are equal only when each entry's are — about a third of the
    cost of checking entry by entry, which was a third of the pydantic path's own cost."""
    raws = [entry.raw for entry in entries if entry.raw is not None]
    return (len(raws) == len(entries)
            and sum(map(len, raws)) == 2 * sum(len(entry.fields) for entry in entries)
            and "".join(chain.from_iterable(raws)).isascii())


class Dispatcher:
    def __init__(self, spec: ListenerSpec, handler: StreamHandler[Any], stats: ListenerStats,
                 failures: FailurePolicy, idempotency: Idempotency | None, acks: Acks,
                 keeper: OwnershipKeeper | None = None, tenure: Tenure | None = None) -> None:
        self._spec = spec
        self._tenure = tenure
        self._sealed = False
        """Set by a hand-over (:meth:`drop_queued`): nothing more is started here."""
        self._stats = stats
        self._failures = failures
        self._idempotency = idempotency
        self._acks = acks
        self._keeper = keeper
        codec = codec_for(spec.codec, spec.json_field)
        self._decode = codec.decoder(type(handler).payload_type)
        self._decode_many = codec.batch_decoder(type(handler).payload_type)
        self._tracer: ConsumerTracer | None = None
        if spec.tracing:  # decided once: without tracing the hot path never looks at it
            self._tracer = ConsumerTracer(spec.stream, spec.group, spec.consumer)
            decode, many = self._decode, self._decode_many
            self._decode = lambda fields: decode(without_trace_fields(fields))
            if many is not None:
                self._decode_many = lambda batch: many([without_trace_fields(f) for f in batch])
        self._decoded: dict[str, Any] = {}
        """Payloads built for a whole read at once (``_payloads``), by entry id, until the
        entry's worker takes its own; only on the hot path (fresh reads, no ordering)."""
        self._predecode = self._decode_many is not None
        self._handle: Callable[[Any], Any] = handler.handle
        self._is_async = handler.is_async()
        self._limiter = spec.rate_limiter
        self._chain: Callable[[Any], Awaitable[Any]] | None = (
            chained(spec.middleware, self._invoke) if spec.middleware else None)
        self._threads = (None if self._is_async
                         else HandlerThreads(spec.concurrency, f"sb-{spec.name}"))
        self._watchdog = Watchdog(spec.handler_timeout.total_seconds(), self._abandon_worker)
        self._orphans: set[asyncio.Task[None]] = set()
        self._queue: deque[_Job] = deque()
        self._workers: set[asyncio.Task[None]] = set()
        self._sleeping: list[asyncio.Event] = []
        self._drained = asyncio.Event()
        self._drained.set()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._marker_ttl = idempotency.ttl if idempotency is not None else timedelta(0)
        self._order: KeyOrder[_Job] | None = None
        if spec.ordering_key is not None:
            # At most a batch waits behind busy keys before the poll loop stops reading.
            self._order = KeyOrder(spec.ordering_key,
                                   spec.json_field if spec.codec == "json" else None,
                                   spec.batch_size)
        self._context = contextvars.copy_context()
        install_entry_context()

    def bind_context(self) -> None:
        """Workers run in the context of the caller (the listener's log context), whichever
        task first hands them work."""
        self._context = contextvars.copy_context()

    # -- running entries ----------------------------------------------------------------
    async def dispatch(self, entries: Sequence[StreamEntry],
                       deliveries: Mapping[str, int] | None = None,
                       until: Until = "started") -> None:
        """Run ``entries`` (``deliveries``: id -> delivery count; absent ids: 1).

        Returns once every entry has started (``until="started"``, what the poll loop
        needs to read on) or finished (``"finished"``: one entry's outcome, for recovery).
        """
        if self._sealed:  # handing over: nothing more starts here; left pending
            self._acks.release([e.id for e in entries])
            return
        done: list[asyncio.Future[None]] = []
        order = self._order
        if until == "started" and not deliveries and order is None:  # the hot path
            if self._predecode and len(entries) > 1:
                # One call into pydantic-core for the whole read, not one per entry.
                self._decoded.update(zip([e.id for e in entries], self._payloads(entries),
                                         strict=True))
            self._queue.extend(zip(entries, repeat(FRESH), repeat(None)))
        else:
            counts = deliveries or {}
            loop = asyncio.get_running_loop()
            for entry in entries:
                future = loop.create_future() if until == "finished" else None
                if future is not None:
                    done.append(future)
                job = (entry, counts.get(entry.id, FRESH), future)
                if order is None or order.admit(entry, job):
                    self._queue.append(job)
        if not self._queue:
            return
        self._drained.clear()
        self._idle.clear()
        self._wake_one()
        if done:
            await asyncio.gather(*done)
        else:
            await self._drained.wait()

    def _wake_one(self) -> None:
        """One more worker on the queue: a sleeping one, else a new one up to concurrency."""
        if not self._queue:
            return
        if self._sleeping:
            self._sleeping.pop().set()
        elif len(self._workers) < self._spec.concurrency:
            task = asyncio.get_running_loop().create_task(
                self._work_loop(), name=f"sb-worker:{self._spec.name}",
                context=self._context.copy())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work_loop(self) -> None:
        """Take entries until the queue is empty, then sleep until woken.

        A worker runs entries one after the other as long as their handlers never suspend.
        When one does, a ``call_soon`` relay (which the loop can only run while this worker
        is suspended) wakes another worker for the rest of the queue — so a cheap batch
        costs one wake-up, and slow handlers get the whole ``concurrency``.
        """
        loop = asyncio.get_running_loop()
        queue = self._queue
        running = self._watchdog.worker()
        wake = asyncio.Event()
        relayed = False

        def relay() -> None:
            nonlocal relayed
            relayed = True
            self._wake_one()

        try:
            while True:
                if not queue:
                    wake.clear()
                    self._sleeping.append(wake)
                    await wake.wait()
                    continue
                relayed = False
                handle = loop.call_soon(relay)
                try:
                    while queue:
                        if relayed:  # this worker suspended and woke another: once more
                            relayed = False
                            handle = loop.call_soon(relay)
                        entry, deliveries, done = queue.popleft()
                        if not queue:
                            self._drained.set()
                        self._active += 1
                        try:
                            if self._tracer is None:
                                await self._one(entry, deliveries, running)
                            else:
                                with self._tracer.span(entry.id, entry.fields, deliveries):
                                    await self._one(entry, deliveries, running)
                        except Exception as exc:  # a bug: never lose the worker over it
                            logger.bind(entry_id=entry.id).opt(exception=exc).error(
                                "unexpected error around the handler; the entry stays pending")
                            self._acks.release((entry.id,))  # recovery will take it
                        finally:
                            if not running.abandoned:  # else already counted out
                                if self._order is not None:
                                    self.settle(entry.id, wake=False)
                                self._leave()
                            if done is not None and not done.done():
                                done.set_result(None)
                        if running.abandoned:
                            return  # its replacement runs on
                finally:
                    handle.cancel()
        finally:
            self._watchdog.retire(running)
            if wake in self._sleeping:
                self._sleeping.remove(wake)

    def settle(self, entry_id: str, wake: bool = True) -> None:
        """With ``ordering_key``: the entry has nothing left to do here (unless it waits
        for a retry), so the next entry of its key may run."""
        if self._order is None or self._failures.retrying(entry_id):
            return
        job = self._order.settled(entry_id)
        if job is None:
            return
        self._queue.append(job)
        self._idle.clear()
        if wake:
            self._wake_one()

    @property
    def backlogged(self) -> bool:
        """Entries wait behind busy keys past the bound: read no more for now."""
        return self._order is not None and self._order.backlogged

    async def wait_for_room(self, timeout: float) -> None:
        """Until the keys move (or a retry falls due: ``nudge``), at most ``timeout``."""
        if self._order is None:
            return
        room = self._order.room
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(room.wait(), timeout)
        if self._order.backlogged:
            room.clear()  # woken by a nudge: the next wait waits again

    def nudge(self) -> None:
        if self._order is not None:
            self._order.nudge()

    def _leave(self) -> None:
        self._active -= 1
        if not self._active and not self._queue:
            self._idle.set()

    def _abandon_worker(self, running: Running) -> None:
        """A handler ignored its cancellation at handler_timeout: count the entry as a
        failed delivery now (retried, then dead-lettered), and let a new worker take the
        stuck one's place. If the handler ever returns, its outcome is dropped."""
        entry, deliveries = running.entry, running.deliveries
        self._workers.discard(running.task)
        self._leave()
        self._stats.timed_out += 1
        logger.bind(entry_id=entry.id).error(
            "handler ignored its cancellation at handler_timeout ({:g}s); its worker is "
            "abandoned and the delivery counts as failed", self._watchdog.timeout)
        task = asyncio.get_running_loop().create_task(
            self._failures.failed(entry, HandlerTimeout(entry.id, self._watchdog.timeout),
                                  deliveries), context=self._context.copy())
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)
        if self._order is not None:
            task.add_done_callback(lambda _: self.settle(entry.id))
        self._wake_one()

    @property
    def busy(self) -> bool:
        """Entries are being handled or wait for a worker (or for their key)."""
        return self._active > 0 or bool(self._queue) or bool(
            self._order is not None and self._order.waiting)

    async def idle(self) -> None:
        """Until every entry handed over has finished (the stop's drain)."""
        await self._idle.wait()

    def overdue(self) -> list[tuple[str | None, float]]:
        """Handlers running past ``handler_timeout``: (entry id, seconds); for health.
        Abandoned ones (a sync handler's thread, an async one that ignored its
        cancellation) count as long as they still run: each holds a thread or a task."""
        late: list[tuple[str | None, float]] = list(self._watchdog.overdue())
        if self._threads is not None:
            now = monotonic()
            late += [(entry_id, now - since) for entry_id, since in self._threads.abandoned()]
        return late

    # -- one entry ----------------------------------------------------------------------
    async def _one(self, entry: StreamEntry, deliveries: int, running: Running) -> None:
        """One entry, start to outcome: may it start (ownership, deliveries), what does it
        say (text, payload), the handler, the outcome. The steps that are not awaited are
        plain methods; the handler's call stays here, since every extra coroutine layer
        costs about half a microsecond per entry."""
        entry_id = entry.id
        payload = self._decoded.pop(entry_id, None) if self._decoded else None
        if self._limiter is not None:  # before the clock starts: waiting is not handling
            await self._limiter.acquire()
        started = perf_counter()
        if self._tenure is not None and not self._tenure.trusted():
            if not await self._tenure_held(self._tenure, entry_id):
                return
            started = perf_counter()
        keeper = self._keeper
        if keeper is not None and not self._trusted(keeper, entry_id, started):
            # Never run a handler on an entry another consumer may own by now: ask Redis.
            if not await self._still_owned(keeper, entry_id):
                return
            started = perf_counter()
        if deliveries > 1 and self._exhausted(deliveries):
            await self._failures.exhausted(entry, deliveries)
            return
        if payload is None:
            payload = self._payload(entry)
        if type(payload) is Rejection:
            self._stats.invalid += 1
            await self._failures.invalid(entry, payload.error, deliveries, payload.reason)
            return
        message, marker = self._message(entry, payload, deliveries)
        # Set, then set back to None (not a token reset): each worker task has a context of
        # its own, and a handler closed at exit may run this from another one.
        ENTRY_ID.set(entry_id)
        running.entry_id, running.started, running.timed_out = entry_id, started, False
        running.entry, running.deliveries = entry, deliveries
        watchdog = self._watchdog
        if watchdog.idle:
            watchdog.arm(started)
        error: Exception | None = None
        try:
            if self._chain is not None:
                _RUNNING.set(running)
                await self._chain(message)
            elif self._is_async:
                await self._handle(message)
            else:
                assert self._threads is not None
                await self._threads.call(running, self._handle, message)
        except asyncio.CancelledError:
            if not running.timed_out:
                raise  # a stop past shutdown_timeout: the entry stays pending
            if running.task.uncancel() > 0:
                raise  # cancelled by the stop as well
            if running.future is not None and self._threads is not None:
                self._threads.abandon(running.future, entry_id)
            self._stats.timed_out += 1
            error = HandlerTimeout(entry_id, watchdog.timeout)
        except Exception as exc:
            error = exc
        else:
            if running.timed_out:  # it swallowed the cancellation and finished anyway
                running.task.uncancel()
        finally:
            running.entry_id = running.future = running.entry = None
            ENTRY_ID.set(None)
            self._stats.handler_seconds.observe(perf_counter() - started)
        if running.abandoned:
            return  # counted as failed when its worker was given up on
        if error is not None:
            self._stats.failed += 1
            await self._failures.failed(entry, error, deliveries)
            return
        self._stats.handled += 1
        self._acks.succeeded(entry_id, marker)

    async def _invoke(self, message: Message[Any]) -> Any:
        """The handler's call at the end of a middleware chain: awaited, or in a thread."""
        if self._is_async:
            return await self._handle(message)
        assert self._threads is not None
        return await self._threads.call(_RUNNING.get(), self._handle, message)

    def _trusted(self, keeper: OwnershipKeeper, entry_id: str, now: float) -> bool:
        """The entry's receipt, or the last renewal, vouches that it is still ours (the
        fencing rule, ownership.py): one dict lookup and a compare, most of the time."""
        receipt = self._acks.in_hand.get(entry_id)
        return receipt is not None and (now < receipt[1] or keeper.trusts(receipt, now))

    async def _tenure_held(self, tenure: Tenure, entry_id: str) -> bool:
        """The partition's lease is not trusted right now (a renewal is late): wait for
        it (tenure.held). A lost lease leaves the entry unstarted, pending for the
        partition's new owner."""
        if await held(tenure):
            return True
        self._acks.fence([entry_id], "")
        return False

    def _exhausted(self, deliveries: int) -> bool:
        """Delivered more often than ``max_deliveries`` without an outcome (its consumers
        died on it): dead-lettered unhandled."""
        spec = self._spec
        return spec.dead_letter_stream is not None and exhausted(deliveries, spec.retry)

    def _payload(self, entry: StreamEntry) -> Any:
        """The handler's payload, or a :class:`Rejection` (dead-lettered at once: it can
        never succeed). Fast path first: every name and value ASCII, no name twice (one
        C-level pass); then the codec."""
        _, fields, raw = entry
        if raw is None or len(raw) != 2 * len(fields) or not all(map(str.isascii, raw)):
            problem = undecodable(entry)
            if problem is not None:
                return Rejection(PayloadError(problem), REASON_UNDECODABLE)
        try:
            return self._decode(fields)
        except PayloadError as exc:
            return Rejection(exc, REASON_INVALID_PAYLOAD)
        except Exception as exc:  # a validator that raised something else: same verdict
            return Rejection(PayloadError(f"payload could not be built: "
                                          f"{type(exc).__name__}: {exc}", exc),
                             REASON_INVALID_PAYLOAD)

    def _payloads(self, entries: Sequence[StreamEntry]) -> list[Any]:
        """Each entry's payload or :class:`Rejection`: the whole list in one call into
        pydantic-core when every entry is plain text and valid; else one by one, so each
        rejection names its own entry."""
        many = self._decode_many
        if many is not None and len(entries) > 1 and _plain_text(entries):
            with contextlib.suppress(Exception):  # one is invalid: the loop says which
                return many([entry.fields for entry in entries])
        return [self._payload(entry) for entry in entries]

    def _message(self, entry: StreamEntry, payload: Any,
                 deliveries: int) -> tuple[Message[Any], str | None]:
        """What the handler receives, and the entry's idempotency marker (if any)."""
        spec = self._spec
        idempotency = self._idempotency
        marker = idempotency.marker_for(entry.fields) if idempotency is not None else None
        return Message(entry.id, spec.stream, spec.group, spec.consumer, entry.fields,
                       payload, deliveries,
                       None if marker is None else (marker, self._marker_ttl),
                       None if self._tenure is None else self._tenure.epoch,
                       idempotency.settings.durability if idempotency is not None
                       else None), marker

    async def _still_owned(self, keeper: OwnershipKeeper, entry_id: str) -> bool:
        """Ask Redis, once or twice (an entry held again during the first answer is not
        covered by it). What it finds gone is said where it is found (LossReport)."""
        for _ in range(2):
            receipt = self._acks.in_hand.get(entry_id)
            if receipt is None:  # taken over, deleted, acked or left to recovery
                logger.bind(entry_id=entry_id).debug("not started: no longer held here")
                return False
            if keeper.trusts(receipt, perf_counter()):
                return True
            await keeper.confirm(entry_id)
        receipt = self._acks.in_hand.get(entry_id)
        if receipt is not None and keeper.trusts(receipt, perf_counter()):
            return True
        if receipt is not None:  # held anew during both answers: leave it, never guess
            keeper.abandon([entry_id], "held again while ownership was being confirmed")
        return False

    def drop_queued(self) -> list[str]:
        """Entries not started yet (queued, or waiting behind their key) leave, unhandled
        and unacked: a hand-over leaves them pending for the partition's next owner.
        Their ids, for the hand to release. From now on :meth:`dispatch` starts nothing
        (a read whose reply was on its way is left pending too): only what runs finishes."""
        self._sealed = True
        waiting = self._order.drop() if self._order is not None else []
        dropped = []
        for entry, _, done in (*self._queue, *waiting):
            dropped.append(entry.id)
            if done is not None and not done.done():
                done.cancel()
        self._queue.clear()
        self._decoded.clear()  # what runs took its payload already
        self._drained.set()  # the poll loop waiting for them to start reads on: to stop
        return dropped

    def close(self) -> None:
        """At stop: workers still running are cancelled (their entries stay pending)."""
        for task in list(self._workers):
            task.cancel()
        waiting = self._order.drop() if self._order is not None else []
        for _, _, done in (*self._queue, *waiting):
            if done is not None and not done.done():
                done.cancel()
        self._queue.clear()
        self._decoded.clear()
        self._watchdog.close()
        if self._threads is not None:
            self._threads.shutdown()
