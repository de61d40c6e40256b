"""Rotation, retention, cleanup and replay against a real redis-server, with a fake clock."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loguru import logger
from redis.asyncio import Redis

from streamboot import RedisOperator
from streamboot.codecs import FlatCodec
from streamboot.config.models import CleanupSettings, RetentionSettings, RotationSettings
from streamboot.jobs.cleanup import CleanupJob
from streamboot.jobs.clock import FakeClock
from streamboot.jobs.retention import RetentionJob
from streamboot.jobs.rotation import RotationJob, RotationPolicy
from streamboot.listener.container import ListenerContainer
from streamboot.publisher import Publisher
from tests.conftest import wait_until
from tests.handlers import Order, RawHandler, Recorder
from tests.streams import make_spec, produce, true

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def listeners(operator: RedisOperator) -> AsyncIterator[ListenerContainer]:
    container = ListenerContainer(operator)
    yield container
    await container.stop()


async def test_rotation_across_a_boundary_drains_then_releases_the_old_stream(
    operator: RedisOperator, listeners: ListenerContainer, key: str
) -> None:
    clock = FakeClock(datetime(2026, 11, 23, 5, 50, tzinfo=UTC))
    settings = RotationSettings(period=timedelta(hours=1), key_format=f"{key}:%Y%m%d%H",
                                ttl=timedelta(hours=3), precreate=timedelta(minutes=5))
    policy = RotationPolicy(settings)
    recorder = Recorder()
    job = RotationJob(make_spec(key, name="orders"), RawHandler(recorder), policy, operator,
                      listeners, clock)
    publisher = Publisher(operator, key, FlatCodec(), policy, clock)
    await job.run_once()
    await listeners.start(timeout=5)
    old = f"{key}:2026112305"
    assert job.streams() == [old]
    assert publisher.key() == old
    ttl = await operator.ttl(old)
    assert ttl is not None
    assert ttl > timedelta(hours=2, minutes=59)  # the TTL came with the stream

    before = [await publisher.publish(Order(order_id=f"a{i}", qty=1)) for i in range(20)]
    clock.advance(timedelta(minutes=6))  # 05:56: within precreate of 06:00
    await job.run_once()
    new = f"{key}:2026112306"
    assert await operator.group_exists(new, "g")
    assert await operator.ttl(new) is not None  # pre-created with its TTL already set
    assert await operator.xlen(new) == 0

    clock.advance(timedelta(minutes=5))  # 06:01: across the boundary
    assert publisher.key() == new
    after = [await publisher.publish(Order(order_id=f"b{i}", qty=1)) for i in range(20)]
    await job.run_once()
    await wait_until(lambda: true(set(recorder.seen) == set(before) | set(after)))
    await wait_until(lambda: _drained(operator, old))
    await job.run_once()  # drained, but within its drain margin: still followed
    assert f"orders@{old}" in listeners.subscriptions
    clock.advance(settings.drain_margin)
    await job.run_once()  # drained and past its drain margin: released
    assert old in job.released
    assert job.streams() == [new]
    assert f"orders@{old}" not in listeners.subscriptions
    assert job.expired_unconsumed == []


async def test_late_writes_to_a_past_period_are_consumed(
    operator: RedisOperator, listeners: ListenerContainer, key: str
) -> None:
    """A producer whose clock is behind writes to the previous period's stream after the
    boundary: within the drain margin (still followed) and after it (released, then
    followed again). Both entries are handled; once it was never, while the stream lived
    on under its TTL."""
    clock = FakeClock(datetime(2026, 11, 23, 5, 59, tzinfo=UTC))
    settings = RotationSettings(period=timedelta(minutes=1), key_format=f"{key}:%H%M",
                                ttl=timedelta(minutes=30), precreate=timedelta(seconds=30),
                                drain_margin=timedelta(minutes=2),
                                check_interval=timedelta(seconds=10))
    recorder = Recorder()
    job = RotationJob(make_spec(key, name="orders"), RawHandler(recorder),
                      RotationPolicy(settings), operator, listeners, clock)
    await job.run_once()
    await listeners.start(timeout=5)
    old = f"{key}:0559"
    on_time = await operator.xadd(old, {"n": "on time"})
    clock.set(datetime(2026, 11, 23, 6, 0, 5, tzinfo=UTC))  # across the boundary
    await job.run_once()
    await wait_until(lambda: true(on_time in recorder.seen))
    late = await operator.xadd(old, {"n": "5 s late"}, nomkstream=True)
    await job.run_once()
    await wait_until(lambda: true(late in recorder.seen))
    clock.set(datetime(2026, 11, 23, 6, 3, tzinfo=UTC))  # past end + drain_margin
    await job.run_once()
    assert old in job.released
    assert f"orders@{old}" not in listeners.subscriptions
    very_late = await operator.xadd(old, {"n": "3 min late"}, nomkstream=True)
    await job.run_once()  # it still lives under its TTL: looked at, and followed again
    await wait_until(lambda: true(very_late in recorder.seen))
    assert job.late_periods == [old]
    assert max(recorder.seen.values()) == 1


async def test_a_period_that_expires_unconsumed_is_reported(
    operator: RedisOperator, listeners: ListenerContainer, key: str, client: Redis
) -> None:
    clock = FakeClock(datetime(2026, 11, 23, 5, 10, tzinfo=UTC))
    settings = RotationSettings(key_format=f"{key}:%Y%m%d%H")
    job = RotationJob(make_spec(key, name="orders", concurrency=1), RawHandler(Recorder()),
                      RotationPolicy(settings), operator, listeners, clock)
    old = f"{key}:2026112305"
    await operator.create_stream(old, ttl=timedelta(hours=3), group="g")
    await operator.xadd(old, {"n": "1"})
    clock.advance(timedelta(hours=1))
    await job.run_once()  # sees 1 entry still to deliver in the old period...
    await listeners.stop()  # ...but nobody gets to it before it expires
    await client.delete(old)
    lines: list[str] = []
    sink = logger.add(lines.append, level="ERROR", format="{message}")
    try:
        await job.run_once()
    finally:
        logger.remove(sink)
    assert job.expired_unconsumed == [old]
    assert any(f"{old} expired with about 1 entries unconsumed" in line for line in lines)


async def test_retention_keeps_what_a_slow_group_has_not_consumed(
    operator: RedisOperator, key: str
) -> None:
    ids = await produce(operator, key, 100)
    await operator.create_group(key, "fast", "0")
    await operator.create_group(key, "slow", "0")
    fast = await operator.xreadgroup(key, "fast", "c", count=100)
    await operator.xack(key, "fast", [e.id for e in fast])
    slow = await operator.xreadgroup(key, "slow", "c", count=30)
    await operator.xack(key, "slow", [e.id for e in slow])  # slow is 70 behind
    job = RetentionJob(operator, RetentionSettings(max_len=10, approximate=False),
                       lambda: [key], FakeClock(datetime.now(UTC)))
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        plan = await job.trim(key)
    finally:
        logger.remove(sink)
    assert [g.name for g in plan.held_back_by] == ["slow"]
    remaining = [e.id for e in await operator.xrange(key)]
    assert remaining == ids[30:]  # everything "slow" still needs is kept
    assert any("held back by group slow (lag 70" in line for line in lines)
    rest = await operator.xreadgroup(key, "slow", "c", count=100)
    assert [e.id for e in rest] == ids[30:]


async def test_retention_by_age_and_pending_entries(operator: RedisOperator, key: str) -> None:
    old = [await operator.xadd(key, {"n": str(i)}, entry_id=f"{1000 + i}-0") for i in range(5)]
    new = await operator.xadd(key, {"n": "new"})
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "c", count=2)  # 2 pending, never acked
    clock = FakeClock(datetime.now(UTC))
    job = RetentionJob(operator, RetentionSettings(max_age=timedelta(hours=1),
                                                   approximate=False), lambda: [key], clock)
    await job.trim(key)
    assert [e.id for e in await operator.xrange(key)] == [*old, new]  # pending holds it all
    await operator.xack(key, "g", old[:2])
    await operator.xreadgroup(key, "g", "c", count=10)
    await operator.xack(key, "g", [*old[2:], new])
    await job.trim(key)
    assert [e.id for e in await operator.xrange(key)] == [new]  # the old ones aged out


async def test_cleanup_keeps_consumers_that_hold_pending_entries(
    operator: RedisOperator, key: str
) -> None:
    await produce(operator, key, 3)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "holder", count=2)  # holds 2 pending
    await operator.xreadgroup(key, "g", "idle", count=1)
    (last,) = await operator.xrange(key, count=1, start=(await operator.xrange(key))[2].id)
    await operator.xack(key, "g", [last.id])  # "idle" holds nothing now
    await asyncio.sleep(0.25)
    job = CleanupJob(operator, CleanupSettings(consumer_idle=timedelta(milliseconds=200)),
                     "g", lambda: [key])
    assert await job.run_once() == [f"{key}/idle"]
    names = [c.name for c in await operator.info_consumers(key, "g")]
    assert names == ["holder"]
    assert (await operator.pending_summary(key, "g")).count == 2


def test_replay_shows_then_redelivers_from_the_given_id(
    redis_url: str, project_env: dict[str, str]
) -> None:
    import redis as sync_redis

    with sync_redis.Redis.from_url(redis_url, decode_responses=True,
                                   encoding_errors="surrogateescape") as r:
        ids = [r.xadd("replay-me", {"n": str(i)}) for i in range(2)]
        # An entry that is not UTF-8 once made the replay command crash.
        ids.append(r.execute_command("XADD", "replay-me", "*", "currency", b"\xe9UR"))
        ids += [r.xadd("replay-me", {"n": str(i)}) for i in range(3, 5)]
        r.xgroup_create("replay-me", "g", "0")
        r.xreadgroup("g", "c", {"replay-me": ">"}, count=5)
        r.xack("replay-me", "g", *ids)
        cmd = [str(Path(sys.executable).with_name("streamboot")), "replay", "replay-me", "g",
               "--from", ids[2], "--url", redis_url]
        shown = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert "3 entries will be delivered again" in shown.stdout
        assert "add --yes" in shown.stdout
        assert r.xreadgroup("g", "c", {"replay-me": ">"}) == []  # nothing changed
        done = subprocess.run([*cmd, "--yes"], capture_output=True, text=True, cwd=ROOT,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        again = r.xreadgroup("g", "c", {"replay-me": ">"}, count=10)
        assert [entry_id for entry_id, _ in again[0][1]] == ids[2:]


async def _drained(operator: RedisOperator, key: str) -> bool:
    (group,) = await operator.info_groups(key)
    return group.lag == 0 and group.pending == 0


async def test_application_wires_rotation_retention_and_cleanup(
    operator: RedisOperator, redis_url: str, key: str
) -> None:
    from streamboot import Application
    from streamboot.config import settings_from_mapping

    clock = FakeClock(datetime(2026, 11, 23, 5, 30, tzinfo=UTC))
    settings = settings_from_mapping({
        "redis": {"url": redis_url},
        "container": {"poll_timeout": "50ms"},
        "listeners": {"orders": {
            "stream": key, "group": "g", "handler": "tests.handlers:LoggingHandler",
            "rotation": {"key_format": f"{key}:%Y%m%d%H"},
            "retention": {"max_len": 1000}}},
    })
    application = Application(settings, clock=clock)
    await application.start()
    try:
        current = f"{key}:2026112305"
        assert application.declared["orders"].streams() == [current]
        publisher = Publisher.for_listener(operator, settings.listeners["orders"], clock)
        entry = await publisher.publish(Order(order_id="o1", qty=1))
        assert application.listeners is not None
        sub = application.listeners.subscriptions[f"orders@{current}"]
        await wait_until(lambda: true(sub.stats.handled == 1))
        assert (await operator.xrange(current))[-1].id == entry
        jobs = application.declared["orders"].jobs
        assert sorted(jobs) == ["cleanup", "recovery", "retention", "rotation"]
        assert jobs["rotation"].every().id == "rotation:orders"
    finally:
        await application.stop()
