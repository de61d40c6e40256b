"""A handler that never returns holds one worker until handler_timeout, never the listener.

Every wait has a bound, and each test proves it: the other entries flow while the hung
handler still hangs; the hung entry is retried, then dead-lettered as a timeout; the stop
ends within its bound with the hung entry left pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from datetime import timedelta

import redis
from loguru import logger

from streamboot import Message, RedisOperator, StreamHandler
from streamboot.config.models import RetrySettings
from streamboot.listener.container import ListenerContainer
from tests.conftest import wait_until
from tests.streams import equals, make_spec, pel, start, true

RETRY = RetrySettings(max_deliveries=2, backoff=timedelta(milliseconds=50))


class HangOn(StreamHandler[dict[str, str]]):
    """Never returns for entries with ``hang``; records the others (and when)."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self.hanging = 0

    async def handle(self, message: Message[dict[str, str]]) -> None:
        if message.payload.get("hang"):
            self.hanging += 1
            await asyncio.Event().wait()
        self.done[message.id] = time.monotonic()


class SyncHangOn(StreamHandler[dict[str, str]]):
    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.done: dict[str, float] = {}
        self.hanging = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def handle(self, message: Message[dict[str, str]]) -> None:
        if message.payload.get("hang"):
            with self.lock:
                self.hanging += 1
            self.release.wait(60)  # "forever" for the test; released at teardown
            return
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(float(message.payload.get("sleep", "0")))
        with self.lock:
            self.in_flight -= 1
            self.done[message.id] = time.monotonic()


async def _hung_entry_is_contained(operator: RedisOperator, container: ListenerContainer,
                                   key: str, handler: HangOn | SyncHangOn) -> None:
    hung = await operator.xadd(key, {"hang": "1"})
    spec = make_spec(key, batch_size=10, concurrency=3, retry=RETRY,
                     handler_timeout=timedelta(seconds=1))
    container.register(spec, handler)
    await container.start(timeout=5)
    await wait_until(lambda: true(handler.hanging == 1))
    hanging_since = time.monotonic()
    others = [await operator.xadd(key, {"n": str(i)}) for i in range(30)]
    await wait_until(lambda: true(set(others) <= set(handler.done)), timeout=5)
    # They flowed while the first delivery of the hung entry was still hanging.
    assert max(handler.done[i] for i in others) < hanging_since + 1.0
    dlq = f"{{{key}}}:dlq"
    await wait_until(lambda: equals(operator.xlen(dlq), 1), timeout=10)
    (dead,) = await operator.xrange(dlq)
    assert dead.fields["dlq_id"] == hung
    assert dead.fields["dlq_deliveries"] == "2"
    assert dead.fields["dlq_error"].startswith("HandlerTimeout: handler did not finish")
    assert handler.hanging == 2  # retried once, then dead-lettered
    stats = container.subscriptions["orders"].stats
    assert stats.timed_out == 2
    await wait_until(lambda: equals(pel(operator, key), 0))
    assert hung not in handler.done


async def test_a_hung_async_handler_is_cancelled_retried_then_dead_lettered(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await _hung_entry_is_contained(operator, container, key, HangOn())


async def test_a_hung_sync_handler_is_abandoned_and_replaced(
    operator: RedisOperator, keeper_client: redis.Redis, key: str
) -> None:
    release = threading.Event()
    container = ListenerContainer(operator, keeper_client)
    handler = SyncHangOn(release)
    try:
        await _hung_entry_is_contained(operator, container, key, handler)
        # Two threads were abandoned (still stuck), yet 3 handlers still run at once.
        handler.max_in_flight = 0
        more = [await operator.xadd(key, {"sleep": "0.2"}) for i in range(9)]
        await wait_until(lambda: true(set(more) <= set(handler.done)), timeout=5)
        assert handler.max_in_flight == 3
    finally:
        await container.stop()
        release.set()


async def test_stop_with_a_hung_handler_ends_within_its_bound(
    operator: RedisOperator, keeper_client: redis.Redis, key: str
) -> None:
    hung = await operator.xadd(key, {"hang": "1"})
    container = ListenerContainer(operator, keeper_client)
    handler = HangOn()
    container.register(make_spec(key, shutdown_timeout=timedelta(milliseconds=500)), handler)
    await container.start(timeout=5)
    await wait_until(lambda: true(handler.hanging == 1))
    began = time.monotonic()
    await container.stop()
    assert time.monotonic() - began < 0.5 + 1.0
    assert container.forced  # the stop had to cancel a handler: exit code 1 for `run`
    rows = await operator.pending_range(key, "g")
    assert [r.id for r in rows] == [hung]  # left pending, not acked


class Deaf(StreamHandler[dict[str, str]]):
    """Swallows every cancellation for ``deaf`` entries; the rest are quick."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.deaf = 0
        self.release = asyncio.Event()  # the test's own way out, at its end

    async def handle(self, message: Message[dict[str, str]]) -> None:
        if message.payload.get("deaf"):
            self.deaf += 1
            while not self.release.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await self.release.wait()
            return
        self.done.add(message.id)


async def test_a_handler_ignoring_its_cancellation_is_abandoned_loudly(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """It cannot be stopped, so it is given up on: the delivery counts as failed (retried,
    then dead-lettered), a new worker takes its place, and it says so — never silent."""
    deaf = await operator.xadd(key, {"deaf": "1"})
    lines: list[str] = []
    sink = logger.add(lines.append, level="ERROR", format="{message}")
    handler = Deaf()
    try:
        await start(container, make_spec(key, concurrency=2, retry=RETRY,
                                         handler_timeout=timedelta(milliseconds=300)), handler)
        dlq = f"{{{key}}}:dlq"
        await wait_until(lambda: equals(operator.xlen(dlq), 1), timeout=10)
        others = [await operator.xadd(key, {"n": str(i)}) for i in range(10)]
        await wait_until(lambda: true(set(others) <= handler.done))  # 2 workers stuck, yet
        overdue = container.subscriptions["orders"].overdue()
    finally:
        logger.remove(sink)
        handler.release.set()
    (dead,) = await operator.xrange(dlq)
    assert (dead.fields["dlq_id"], dead.fields["dlq_deliveries"]) == (deaf, "2")
    assert handler.deaf == 2
    assert sum("ignored its cancellation at handler_timeout (0.3s)" in ln for ln in lines) == 2
    assert {entry_id for entry_id, _ in overdue} == {deaf}  # what /healthz reports
