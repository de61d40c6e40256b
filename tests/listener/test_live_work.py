"""A live worker keeps what Redis delivered to it — in flight, waiting, or read ahead.

The shape of the hot path is the point: full batches, the read-ahead on, handlers slow
enough that a batch takes longer than ``min_idle``, and the recovery job of this process
and of a rival scanning all the while. (The project's first slow-handler test used a
4-entry batch, so the read-ahead was always empty and this never showed.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis

from streamboot import Message, RedisOperator, StreamHandler
from streamboot.config.models import PendingScanSettings
from streamboot.jobs.recovery import PendingRecovery
from streamboot.listener.container import ListenerContainer
from tests.conftest import wait_until
from tests.streams import equals, lag, make_spec, pel, produce, true


class Tally(StreamHandler[dict[str, str]]):
    """Counts every handling of every entry, across workers (one process here)."""

    def __init__(self, handled: Counter[str], seconds: float,
                 started: asyncio.Event | None = None) -> None:
        self.handled = handled
        self.seconds = seconds
        self.started = started

    async def handle(self, message: Message[dict[str, str]]) -> None:
        if self.started is not None:
            self.started.set()
        await asyncio.sleep(self.seconds)
        self.handled[message.id] += 1


async def scan_forever(recoveries: list[PendingRecovery], every: float) -> None:
    while True:
        for recovery in recoveries:
            await recovery.run_once()
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def scanning(containers: list[ListenerContainer], operator: RedisOperator,
                   every: float) -> AsyncIterator[None]:
    """Each worker's recovery job, as the scheduler would run it."""
    recoveries = [PendingRecovery(sub, operator)
                  for c in containers for sub in c.subscriptions.values()]
    task = asyncio.create_task(scan_forever(recoveries, every))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("workers", [1, 2])
async def test_slow_full_batches_with_read_ahead_are_never_handled_twice(
    operator: RedisOperator, redis_url: str, key: str, workers: int
) -> None:
    """The issue's reproduction, scaled: batch 50, concurrency 2, handlers of 0.1 s, so a
    batch takes 2.5 s while entries are reclaimable after min_idle = 1 s; recovery scans
    every 0.3 s in every worker. Before, 50–70 of 120 entries ran twice."""
    ids = await produce(operator, key, 120)
    scan = PendingScanSettings(interval=timedelta(milliseconds=300),
                               min_idle=timedelta(seconds=1))
    handled: Counter[str] = Counter()
    clients = [redis.Redis.from_url(redis_url, decode_responses=True) for _ in range(workers)]
    containers = [ListenerContainer(operator, client) for client in clients]
    for index, container in enumerate(containers):
        container.register(make_spec(key, consumer=f"w{index}", batch_size=50, concurrency=2,
                                     poll_timeout=timedelta(milliseconds=100),
                                     pending_scan=scan), Tally(handled, 0.1))
    try:
        for container in containers:
            await container.start(timeout=5)
        async with scanning(containers, operator, 0.3):
            await wait_until(lambda: true(len(handled) == 120), timeout=30)
            await wait_until(lambda: equals(pel(operator, key), 0))
        subs = [s for c in containers for s in c.subscriptions.values()]
        assert sum(s.stats.reads for s in subs) >= 3  # full batches, read ahead
    finally:
        for container in containers:
            await container.stop()
        for client in clients:
            client.close()
    assert set(handled) == set(ids)
    assert [i for i, n in handled.items() if n > 1] == []
    assert sum(s.stats.reclaimed for s in subs) == 0  # nothing looked abandoned
    assert await lag(operator, key) == 0


async def test_an_entry_taken_over_while_waiting_is_not_handled_by_the_old_owner(
    operator: RedisOperator, keeper_client: redis.Redis, key: str
) -> None:
    """While entries wait for a worker, another consumer takes one over (as recovery
    would from a frozen process). The renewal sees it gone; the old owner skips it."""
    ids = await produce(operator, key, 4)
    handled: Counter[str] = Counter()
    first = asyncio.Event()
    container = ListenerContainer(operator, keeper_client)
    scan = PendingScanSettings(min_idle=timedelta(milliseconds=300))
    container.register(make_spec(key, batch_size=4, concurrency=1, pending_scan=scan),
                       Tally(handled, 0.6, first))
    try:
        await container.start(timeout=5)
        await asyncio.wait_for(first.wait(), 5)  # entry 0 runs; 1-3 wait in the queue
        taken = await operator.xclaim(key, "g", "rival", timedelta(0), [ids[2]])
        assert [e.id for e in taken] == [ids[2]]
        await wait_until(lambda: true(len(handled) == 3), timeout=10)
        sub = container.subscriptions["orders"]
        await wait_until(lambda: true(sub.stats.lost == 1))
    finally:
        await container.stop()
    assert ids[2] not in handled
    assert sorted(handled) == sorted([ids[0], ids[1], ids[3]])
    rows = await operator.pending_range(key, "g")
    assert [(r.id, r.consumer) for r in rows] == [(ids[2], "rival")]  # still the rival's
