"""Batch handlers: entries handed over in lists, each with its own outcome.

A :class:`~streamboot.BatchHandler` listener runs on the same loop, acks, fences, retries
and dead letters as one-at-a-time handlers (dispatch.py); only the unit of work differs.
A worker takes up to ``batch.max_size`` queued entries as one batch. When fewer are
queued and ``batch.max_wait`` has not passed since the oldest of them arrived, it waits
for more (the poll loop reads on meanwhile, and the entries are in hand, renewed) — so
a trickle still makes batches, and no entry waits past ``max_wait`` for its batch to
fill. A stop, a recovered entry (which must finish before its ack) or a full queue ends
the wait at once.

Each entry passes the same gates as before the handler starts (its partition's lease,
its ownership, ``max_deliveries``, its payload): those that fail a gate are settled on
their own and never join the batch. The handler's answer is per entry
(:func:`failures_of`): ``None`` — all succeeded; a mapping of ids to errors — those
failed, the others succeeded; an exception or ``handler_timeout`` — all failed. Each
failed entry then follows the retry policy alone, so a retry comes back in a later batch.

With ``ordering_key``, a batch never holds two entries of one key: a key's next entry
joins a later batch once the one before it is settled (acked or dead-lettered; a retry
keeps the key) — per-key order is exact, across batches and failures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from time import monotonic, perf_counter
from typing import Any

from loguru import logger

from ..errors import BatchEntryError, HandlerTimeout
from ..handler import BatchHandler
from ..message import Message
from ..observability.logs import ENTRY_ID
from ..wire.records import StreamEntry
from .dispatch import _RUNNING, Dispatcher, Rejection, Until, _Job
from .spec import ListenerSpec
from .timeouts import Running


def failures_of(result: Any, ids: Sequence[str]) -> dict[str, Exception]:
    """The failed entries of a batch, from what ``handle_batch`` returned.

    ``None``: none failed. A mapping of entry ids (``str``, or ``bytes``) to an exception
    (or a reason as text; ``None`` or empty: no reason given): those failed. Ids not in
    the batch are a handler bug, said and ignored (what it names is not an entry it was
    given). Anything else is a handler bug too, and fails the whole batch: its entries
    are retried, never acked on a guess.
    """
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        error = TypeError(f"handle_batch returned a {type(result).__name__}; return None "
                          "(all succeeded) or a mapping of the failed entries' ids to errors")
        return dict.fromkeys(ids, error)
    known = set(ids)
    failed: dict[str, Exception] = {}
    strangers = []
    for entry_id, why in result.items():
        if isinstance(entry_id, bytes):  # an id as redis-py gives it undecoded: the same id
            entry_id = entry_id.decode("ascii", "replace")
        if entry_id not in known:
            strangers.append(entry_id)
        elif isinstance(why, Exception):
            failed[entry_id] = why
        elif why is None or why == "":
            failed[entry_id] = BatchEntryError("failed (handle_batch named it without a "
                                               "reason)")
        else:
            failed[entry_id] = BatchEntryError(str(why))
    if strangers:
        logger.error("handle_batch reported {} id(s) not in its batch ({}); ignored: name "
                     "the failed entries by message.id", len(strangers),
                     ", ".join(map(repr, strangers[:3])))
    return failed


class BatchDispatcher(Dispatcher):
    """The dispatcher of a :class:`~streamboot.BatchHandler` listener."""

    def __init__(self, spec: ListenerSpec, handler: BatchHandler[Any], *args: Any,
                 **kwargs: Any) -> None:
        super().__init__(spec, handler, *args, **kwargs)
        self._handle = handler.handle_batch
        self._predecode = False  # each batch is validated in one call when it is made
        batch = self._spec.batch
        self._max_size = (batch.max_size if batch is not None and batch.max_size
                          else self._spec.batch_size)
        self._max_wait = batch.max_wait.total_seconds() if batch is not None else 0.0
        self._since: float | None = None
        """When the oldest queued entry arrived (monotonic): its batch waits until then
        plus ``max_wait`` at most."""
        self._flush = False
        """Handle what is queued now, without waiting to fill (a stop, a recovery)."""

    async def dispatch(self, entries: Sequence[StreamEntry],
                       deliveries: Mapping[str, int] | None = None,
                       until: Until = "started") -> None:
        """Queue ``entries`` for the next batches. Returns once each is in a batch that
        started, or is queued waiting for its batch to fill (``until="started"``), or
        once each has its outcome (``"finished"``)."""
        if not self._queue:
            self._since = monotonic()
        if until == "finished":
            self._flush = True
        await super().dispatch(entries, deliveries, until)

    async def idle(self) -> None:
        """The stop's drain: a batch waiting to fill is handled now."""
        self._flush = True
        for wake in list(self._sleeping):
            wake.set()
        await super().idle()

    def _fill_wait(self) -> float:
        """Seconds the queued entries may wait for more before they are a batch."""
        if (self._flush or self._max_wait <= 0 or self._since is None
                or len(self._queue) >= self._max_size):
            return 0.0
        return self._since + self._max_wait - monotonic()

    def _take(self) -> list[_Job]:
        queue = self._queue
        jobs = [queue.popleft() for _ in range(min(len(queue), self._max_size))]
        if not queue:
            self._drained.set()
            self._since = None
            self._flush = False
        return jobs

    async def _work_loop(self) -> None:
        """Take a batch, run it, settle its entries; sleep when nothing is queued, or wait
        (bounded by ``max_wait``) while a batch fills."""
        queue = self._queue
        running = self._watchdog.worker()
        wake = asyncio.Event()
        try:
            while True:
                wait = self._fill_wait() if queue else None
                if wait is None or wait > 0:
                    if queue:
                        self._drained.set()  # the poll loop reads on while this one fills
                    wake.clear()
                    self._sleeping.append(wake)
                    try:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(wake.wait(), wait)
                    finally:
                        if wake in self._sleeping:
                            self._sleeping.remove(wake)
                    continue
                jobs = self._take()
                if queue:
                    self._wake_one()  # more than a batch queued: another worker may start
                self._active += 1  # one handling: the batch
                try:
                    await self._batch(jobs, running)
                except Exception as exc:  # a bug: never lose the worker over it
                    logger.opt(exception=exc).error(
                        "unexpected error around the batch handler; its {} entries stay "
                        "pending", len(jobs))
                    self._acks.release([entry.id for entry, _, _ in jobs])
                finally:
                    if not running.abandoned:  # else already counted out
                        if self._order is not None:
                            for entry, _, _ in jobs:
                                self.settle(entry.id, wake=False)
                        self._leave()
                    for _, _, done in jobs:
                        if done is not None and not done.done():
                            done.set_result(None)
                if running.abandoned:
                    return  # its replacement runs on
        finally:
            self._watchdog.retire(running)
            if wake in self._sleeping:
                self._sleeping.remove(wake)

    async def _batch(self, jobs: list[_Job], running: Running) -> None:
        """One batch, start to outcomes: the gates each entry passes, the handler's call,
        each entry's outcome."""
        if self._limiter is not None:  # one token per handle_batch call
            await self._limiter.acquire()
        started = perf_counter()
        ids = [entry.id for entry, _, _ in jobs]
        if self._tenure is not None and not self._tenure.trusted():
            if not await self._tenure_held(self._tenure, ids[0]):
                self._acks.fence(ids[1:], "")
                return
            started = perf_counter()
        ready: list[tuple[StreamEntry, int]] = []
        keeper = self._keeper
        for entry, deliveries, _ in jobs:
            if (keeper is not None and not self._trusted(keeper, entry.id, started)
                    and not await self._still_owned(keeper, entry.id)):
                continue
            if deliveries > 1 and self._exhausted(deliveries):
                await self._failures.exhausted(entry, deliveries)
                continue
            ready.append((entry, deliveries))
        payloads = self._payloads([entry for entry, _ in ready])
        batch: list[tuple[StreamEntry, int, Message[Any], str | None]] = []
        for (entry, deliveries), payload in zip(ready, payloads, strict=True):
            if type(payload) is Rejection:
                self._stats.invalid += 1
                await self._failures.invalid(entry, payload.error, deliveries, payload.reason)
                continue
            message, marker = self._message(entry, payload, deliveries)
            batch.append((entry, deliveries, message, marker))
        if not batch:
            return
        if self._tracer is None:
            await self._run(batch, running, perf_counter())
        else:
            with self._tracer.batch_span([entry for entry, _, _, _ in batch]):
                await self._run(batch, running, perf_counter())

    async def _run(self, batch: list[tuple[StreamEntry, int, Message[Any], str | None]],
                   running: Running, started: float) -> None:
        messages = [message for _, _, message, _ in batch]
        first = messages[0].id
        ENTRY_ID.set(first)
        running.entry_id, running.started, running.timed_out = first, started, False
        running.entry, running.deliveries = batch[0][0], batch[0][1]
        running.batch = [(entry, deliveries) for entry, deliveries, _, _ in batch]
        watchdog = self._watchdog
        if watchdog.idle:
            watchdog.arm(started)
        error: Exception | None = None
        result: Any = None
        try:
            if self._chain is not None:
                _RUNNING.set(running)
                result = await self._chain(messages)
            elif self._is_async:
                result = await self._handle(messages)
            else:
                assert self._threads is not None
                result = await self._threads.call(running, self._handle, messages)
        except asyncio.CancelledError:
            if not running.timed_out:
                raise  # a stop past shutdown_timeout: the entries stay pending
            if running.task.uncancel() > 0:
                raise  # cancelled by the stop as well
            if running.future is not None and self._threads is not None:
                self._threads.abandon(running.future, first)
            self._stats.timed_out += 1
            error = HandlerTimeout(first, watchdog.timeout)  # each entry: its own, below
        except Exception as exc:
            error = exc
        else:
            if running.timed_out:  # it swallowed the cancellation and finished anyway
                running.task.uncancel()
        finally:
            running.entry_id = running.future = running.entry = running.batch = None
            ENTRY_ID.set(None)
            self._stats.handler_seconds.observe(perf_counter() - started)
        if running.abandoned:
            return  # counted as failed when its worker was given up on
        ids = [message.id for message in messages]
        if isinstance(error, HandlerTimeout):
            failed: dict[str, Exception] = {i: HandlerTimeout(i, watchdog.timeout)
                                            for i in ids}
        elif error is not None:
            failed = dict.fromkeys(ids, error)
        else:
            failed = failures_of(result, ids)
        for entry, deliveries, _, marker in batch:
            why = failed.get(entry.id)
            if why is None:
                self._stats.handled += 1
                self._acks.succeeded(entry.id, marker)
            else:
                self._stats.failed += 1
                await self._failures.failed(entry, why, deliveries)

    def _abandon_worker(self, running: Running) -> None:
        """``handle_batch`` ignored its cancellation at handler_timeout: every entry of the
        batch counts as a failed delivery now; a new worker takes the stuck one's place."""
        batch = running.batch or [(running.entry, running.deliveries)]
        self._workers.discard(running.task)
        self._leave()
        self._stats.timed_out += 1
        logger.bind(entry_id=running.entry_id).error(
            "handle_batch ignored its cancellation at handler_timeout ({:g}s); its worker "
            "is abandoned and the delivery of its {} entries counts as failed",
            self._watchdog.timeout, len(batch))

        async def fail_all() -> None:
            for entry, deliveries in batch:
                await self._failures.failed(
                    entry, HandlerTimeout(entry.id, self._watchdog.timeout), deliveries)
                if self._order is not None:
                    self.settle(entry.id)

        task = asyncio.get_running_loop().create_task(fail_all(),
                                                      context=self._context.copy())
        self._orphans.add(task)
        task.add_done_callback(self._orphans.discard)
        self._wake_one()
