"""Pending recovery and the stuck-vs-slow rule, against a real redis-server."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import redis
from loguru import logger
from redis.asyncio import Redis

from streamboot import Application, RedisOperator
from streamboot.config import settings_from_mapping
from streamboot.config.models import PendingScanSettings, RetrySettings
from streamboot.jobs.recovery import ListenerRecovery, PendingRecovery
from streamboot.listener.container import ListenerContainer
from tests.conftest import wait_until
from tests.handlers import FailingHandler, RawHandler, Recorder, SlowHandler
from tests.streams import age, equals, make_spec, pel, produce, true

QUICK_SCAN = PendingScanSettings(interval=timedelta(milliseconds=100),
                                 min_idle=timedelta(milliseconds=600), count=50,
                                 warn_after=timedelta(minutes=5))


async def orphan(operator: RedisOperator, key: str, n: int,
                 client: Redis | None = None, idle: timedelta = timedelta(0)) -> list[str]:
    """Entries read by a consumer that then died: pending, never acked; with ``client``,
    made to look idle for ``idle`` already (no sleeping past min_idle)."""
    ids = await produce(operator, key, n)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "dead", count=n)
    if client is not None:
        await age(client, key, "g", "dead", ids, idle)
    return ids


async def test_entries_of_a_dead_consumer_are_reclaimed_and_handled(
    operator: RedisOperator, keeper_client: redis.Redis, client: Redis, key: str
) -> None:
    ids = await orphan(operator, key, 30, client, timedelta(seconds=1))  # past min_idle
    listeners = ListenerContainer(operator, keeper_client)
    recorder = Recorder()
    sub = listeners.register(make_spec(key, consumer="alive", pending_scan=QUICK_SCAN,
                                       batch_size=7), RawHandler(recorder))
    await listeners.start(timeout=5)
    recovery = PendingRecovery(sub, operator)
    try:
        first = await recovery.run_once()
        assert first.claimed == 30
        await wait_until(lambda: true(set(recorder.seen) == set(ids)))
        await wait_until(lambda: equals(pel(operator, key), 0))
    finally:
        await listeners.stop()
    assert {recorder.deliveries[i] for i in ids} == {2}  # the dead one's delivery, and ours
    assert sub.stats.reclaimed == 30


async def test_recovery_is_bounded_and_continues_its_cursor(
    operator: RedisOperator, keeper_client: redis.Redis, client: Redis, key: str
) -> None:
    await orphan(operator, key, 25, client, timedelta(seconds=1))
    listeners = ListenerContainer(operator, keeper_client)
    scan = QUICK_SCAN.model_copy(update={"count": 10})
    sub = listeners.register(make_spec(key, consumer="alive", pending_scan=scan),
                             RawHandler(Recorder()))
    recovery = PendingRecovery(sub, operator)
    reports = [await recovery.run_once() for _ in range(3)]
    assert [r.claimed for r in reports] == [10, 10, 5]
    assert reports[-1].cursor == "0-0"  # reached the end: the next scan starts over


async def test_fresh_pending_entries_are_not_reclaimed(
    operator: RedisOperator, keeper_client: redis.Redis, key: str
) -> None:
    await orphan(operator, key, 5)
    listeners = ListenerContainer(operator, keeper_client)
    sub = listeners.register(make_spec(key, consumer="alive", pending_scan=QUICK_SCAN),
                             RawHandler(Recorder()))
    assert (await PendingRecovery(sub, operator).run_once()).claimed == 0
    assert (await operator.pending_summary(key, "g")).consumers == {"dead": 5}


async def test_entries_trimmed_while_pending_are_counted_and_cleared(
    operator: RedisOperator, keeper_client: redis.Redis, client: Redis, key: str
) -> None:
    await orphan(operator, key, 8, client, timedelta(seconds=1))
    await operator.xtrim(key, maxlen=0, approximate=False)
    listeners = ListenerContainer(operator, keeper_client)
    sub = listeners.register(make_spec(key, consumer="alive", pending_scan=QUICK_SCAN),
                             RawHandler(Recorder()))
    report = await PendingRecovery(sub, operator).run_once()
    assert (report.claimed, report.deleted) == (0, 8)
    assert sub.stats.deleted_while_pending == 8
    assert await pel(operator, key) == 0


async def test_slow_handler_is_not_reclaimed_while_its_owner_lives(
    operator: RedisOperator, keeper_client: redis.Redis, key: str
) -> None:
    """A handler three times longer than min_idle keeps its entries: the owner renews them."""
    ids = await produce(operator, key, 4)
    slow, rescuer = Recorder(), Recorder()
    owner = ListenerContainer(operator, keeper_client)
    other = ListenerContainer(operator, keeper_client)
    owner.register(make_spec(key, consumer="owner", pending_scan=QUICK_SCAN, batch_size=4),
                   SlowHandler(slow, seconds=1.8))
    rival = other.register(make_spec(key, consumer="rival", pending_scan=QUICK_SCAN),
                           RawHandler(rescuer))
    await owner.start(timeout=5)
    await wait_until(lambda: true(slow.in_flight == 4))
    await other.start(timeout=5)
    recovery = PendingRecovery(rival, operator)
    try:
        while slow.in_flight:  # scan all the while the owner works, 3x past min_idle
            assert (await recovery.run_once()).claimed == 0
            await asyncio.sleep(0.1)
        await wait_until(lambda: equals(pel(operator, key), 0))
    finally:
        await owner.stop()
        await other.stop()
    assert set(slow.seen) == set(ids)
    assert {slow.deliveries[i] for i in ids} == {1}
    assert rescuer.seen == {}


async def test_entries_left_pending_are_retried_by_recovery_then_dead_lettered(
    operator: RedisOperator, keeper_client: redis.Redis, key: str
) -> None:
    entry = await operator.xadd(key, {"n": "1", "fail": "yes"})
    no_backoff = RetrySettings(max_deliveries=3, backoff=timedelta(0))
    listeners = ListenerContainer(operator, keeper_client)
    sub = listeners.register(make_spec(key, pending_scan=QUICK_SCAN, retry=no_backoff),
                             FailingHandler(Recorder()))
    await listeners.start(timeout=5)
    recovery = PendingRecovery(sub, operator)
    dlq = f"{{{key}}}:dlq"
    try:
        await wait_until(lambda: true(sub.stats.failed == 1))
        while await operator.xlen(dlq) == 0:
            await recovery.run_once()  # reclaims it once idle past min_idle, by itself
            await asyncio.sleep(0.1)
    finally:
        await listeners.stop()
    (dead,) = await operator.xrange(dlq)
    assert (dead.fields["dlq_id"], dead.fields["dlq_deliveries"]) == (entry, "3")
    assert sub.stats.failed == 3
    assert await pel(operator, key) == 0


async def test_long_pending_entries_are_logged(
    operator: RedisOperator, keeper_client: redis.Redis, client: Redis, key: str
) -> None:
    await orphan(operator, key, 2, client, timedelta(milliseconds=400))
    scan = QUICK_SCAN.model_copy(update={"min_idle": timedelta(hours=1),
                                         "warn_after": timedelta(milliseconds=300)})
    listeners = ListenerContainer(operator, keeper_client)
    sub = listeners.register(make_spec(key, consumer="alive", pending_scan=scan),
                             RawHandler(Recorder()))
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        report = await PendingRecovery(sub, operator).run_once()
    finally:
        logger.remove(sink)
    assert report.overdue == 2
    assert sum("owner dead, 1 deliveries" in line for line in lines) == 2


async def test_application_schedules_recovery_at_start(
    operator: RedisOperator, redis_url: str, client: Redis, key: str
) -> None:
    ids = await orphan(operator, key, 5, client, timedelta(seconds=1))
    settings = settings_from_mapping({
        "redis": {"url": redis_url, "socket_connect_timeout": "150ms"},
        "container": {"poll_timeout": "50ms"},
        "listeners": {"orders": {
            "stream": key, "group": "g", "consumer": "alive",
            "handler": "tests.handlers:LoggingHandler",
            "pending_scan": {"interval": "100ms", "min_idle": "600ms"}}},
    })
    application = Application(settings)
    await application.start()
    try:
        assert application.listeners is not None
        sub = application.listeners.subscriptions["orders"]
        await wait_until(lambda: equals(pel(operator, key), 0))
    finally:
        await application.stop()
    assert sub.stats.reclaimed == len(ids)
    assert sub.stats.handled == len(ids)


async def test_the_recovery_job_leaves_a_consumer_reading_its_own_pending_list_alone(
    operator: RedisOperator, keeper_client: redis.Redis, client: Redis, key: str
) -> None:
    """A worker restarted under its old consumer name replays its own pending list, one
    entry at a time (so a poison entry's crash takes no batch mate with it); those
    entries are idle past min_idle (the previous run died). The recovery job, running
    meanwhile (it runs at start), must not claim them too: it would handle one beside the
    replay's (the defect: a batch mate of the poison entry applied three times in a CI run
    of tests/faults/test_bounded_stop_and_poison.py, its acks lost with each crash)."""
    ids = await produce(operator, key, 6)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "w1", count=6)
    await age(client, key, "g", "w1", ids, timedelta(seconds=1))
    listeners = ListenerContainer(operator, keeper_client)
    recorder = Recorder()
    sub = listeners.register(make_spec(key, consumer="w1", pending_scan=QUICK_SCAN,
                                       concurrency=1), SlowHandler(recorder, 0.15))
    recovery = ListenerRecovery("orders", QUICK_SCAN.interval, listeners, operator)
    await listeners.start(timeout=5)
    try:
        await wait_until(lambda: true(recorder.in_flight == 1))  # the replay has begun
        for _ in range(5):
            await recovery.run_once()
            await asyncio.sleep(0.1)
        await wait_until(lambda: true(set(recorder.seen) == set(ids)))
        await wait_until(lambda: equals(pel(operator, key), 0))
    finally:
        await listeners.stop()
    assert dict(recorder.seen) == dict.fromkeys(ids, 1)
    assert sub.stats.reclaimed == 0
    assert recorder.max_in_flight == 1  # one at a time, as the replay promises


async def test_a_claim_during_the_own_pending_replay_never_handles_an_entry_twice(
    operator: RedisOperator, keeper_client: redis.Redis, client: Redis, key: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process frozen past min_idle resumes: its listener re-reads its own pending list
    while a recovery run under way claims the same entries (idle, and its own). The claim
    lands between the replay's read and its dispatch (forced here at the replay's one
    round trip in between): the entry is handled once, by one of the two. (Before the fix:
    handled twice, once by each.)"""
    ids = await produce(operator, key, 1)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "alive", count=1)  # ours, from before the freeze
    await age(client, key, "g", "alive", ids, timedelta(seconds=1))  # past min_idle
    listeners = ListenerContainer(operator, keeper_client)
    recorder = Recorder()
    sub = listeners.register(make_spec(key, consumer="alive", pending_scan=QUICK_SCAN),
                             SlowHandler(recorder, seconds=0.2))
    counts = operator.delivery_counts
    claimed: list[int] = []

    async def claim_first(*args: Any, **kwargs: Any) -> Any:
        if not claimed:  # as if Redis served the claim just before the read, whose reply
            # the loop took first (the read reset the idle time: it is made idle again)
            await age(client, key, "g", "alive", ids, timedelta(seconds=1))
            claimed.append((await PendingRecovery(sub, operator).run_once()).claimed)
        return await counts(*args, **kwargs)

    monkeypatch.setattr(operator, "delivery_counts", claim_first)
    await listeners.start(timeout=5)
    try:
        await wait_until(lambda: equals(pel(operator, key), 0))
        await asyncio.sleep(0.5)  # a second handling would have begun by now
    finally:
        await listeners.stop()
    assert claimed == [1]  # the claim did land in the window
    assert recorder.seen == {ids[0]: 1}
    assert recorder.max_in_flight == 1
