import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from streamboot import RedisOperator
from streamboot.codecs import FlatCodec
from streamboot.config.models import (
    BackpressureSettings,
    DurabilitySettings,
    ListenerSettings,
    RotationSettings,
)
from streamboot.errors import Backpressure, MissingStreamError, NotDurableError
from streamboot.jobs.clock import FakeClock
from streamboot.publisher import Publisher


class Event(BaseModel):
    n: int


async def test_publish_adds_schema_version_and_trims(operator: RedisOperator, key: str) -> None:
    publisher = Publisher(operator, key, FlatCodec(), max_len=5, schema_version=2)
    await publisher.publish(Event(n=1))
    (entry,) = await operator.xrange(key)
    assert entry.fields == {"n": "1", "schema_version": "2"}


async def test_publish_many_is_pipelined_and_ordered(operator: RedisOperator, key: str) -> None:
    ids = await Publisher(operator, key, FlatCodec()).publish_many(
        [Event(n=i) for i in range(1200)], chunk=500)
    entries = await operator.xrange(key)
    assert [e.id for e in entries] == ids
    assert [e.fields["n"] for e in entries] == [str(i) for i in range(1200)]


async def test_backpressure_raises_instead_of_dropping(operator: RedisOperator, key: str) -> None:
    policy = BackpressureSettings(max_length=3, check_every=timedelta(0))
    publisher = Publisher(operator, key, FlatCodec(), backpressure=policy)
    for i in range(3):
        await publisher.publish(Event(n=i))
    with pytest.raises(Backpressure, match="over its limit"):
        await publisher.publish(Event(n=3))
    assert await operator.xlen(key) == 3  # refused, not dropped silently


async def test_backpressure_on_group_lag_can_wait(operator: RedisOperator, key: str) -> None:
    await operator.create_group(key, "g", "$")
    policy = BackpressureSettings(max_lag=2, mode="wait", wait_timeout=timedelta(seconds=5),
                                  check_every=timedelta(milliseconds=10))
    publisher = Publisher(operator, key, FlatCodec(), backpressure=policy, group="g")
    await publisher.publish(Event(n=0))
    await publisher.publish(Event(n=1))
    await asyncio.sleep(0.02)  # past check_every: the next publish looks again
    waiting = asyncio.create_task(publisher.publish(Event(n=2)))
    await asyncio.sleep(0.1)
    assert not waiting.done()  # lag 2: the producer waits
    await operator.xreadgroup(key, "g", "c", count=10)  # the consumer catches up
    await asyncio.wait_for(waiting, timeout=5)
    assert await operator.xlen(key) == 3


def rotated_listener(key: str) -> ListenerSettings:
    return ListenerSettings(stream=key, group="g", handler="-", rotation=RotationSettings(
        period=timedelta(hours=1), key_format=key + ":%Y%m%d%H", ttl=timedelta(hours=3)))


async def test_publish_before_any_consumer_creates_the_period_stream(
        operator: RedisOperator, key: str) -> None:
    """A deploy across a boundary: no rotation job has made this period's stream yet. The
    entry still lands in the right period stream, which has its group and its TTL (it once
    came back as the string 'None', with nothing written)."""
    clock = FakeClock(datetime(2026, 12, 1, 10, 30, tzinfo=UTC))
    publisher = Publisher.for_listener(operator, rotated_listener(key), clock)
    entry_id = await publisher.publish(Event(n=1))
    period = f"{key}:2026120110"
    (entry,) = await operator.xrange(period)
    assert entry.id == entry_id
    assert entry.fields == {"n": "1"}
    assert [g.name for g in await operator.info_groups(period)] == ["g"]
    ttl = await operator.ttl(period)
    assert ttl is not None
    assert timedelta(hours=2, minutes=59) < ttl <= timedelta(hours=3)
    clock.advance(timedelta(hours=1))  # the next period: created on the first publish too
    ids = await publisher.publish_many([Event(n=i) for i in range(3)])
    assert [e.id for e in await operator.xrange(f"{key}:2026120111")] == ids


async def test_publish_recreates_a_period_stream_deleted_meanwhile(
        operator: RedisOperator, key: str) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 10, 30, tzinfo=UTC))
    publisher = Publisher.for_listener(operator, rotated_listener(key), clock)
    await publisher.publish(Event(n=1))
    await operator.delete(f"{key}:2026120110")  # flushed, or expired early
    entry_id = await publisher.publish(Event(n=2))
    assert [e.id for e in await operator.xrange(f"{key}:2026120110")] == [entry_id]
    assert await operator.ttl(f"{key}:2026120110") is not None


async def test_xadd_without_mkstream_raises_instead_of_a_fake_id(
        operator: RedisOperator, key: str) -> None:
    with pytest.raises(MissingStreamError, match="does not exist"):
        await operator.xadd(key, {"n": "1"}, nomkstream=True)
    assert await operator.xadd_many(key, [{"n": "1"}], nomkstream=True) == [None]
    assert not await operator.exists(key)


async def test_durability_without_enough_replicas_names_what_was_written(
        operator: RedisOperator, key: str) -> None:
    """This server has no replica: WAIT comes back with 0 at its timeout, and the publish
    raises naming the entries — written, not undone — instead of returning as if safe."""
    durability = DurabilitySettings(replicas=1, timeout=timedelta(milliseconds=50))
    publisher = Publisher(operator, key, FlatCodec(), durability=durability)
    with pytest.raises(NotDurableError) as single:
        await publisher.publish(Event(n=1))
    (entry,) = await operator.xrange(key)
    assert single.value.ids == [entry.id] == single.value.written
    assert (single.value.acknowledged, single.value.required) == (0, 1)
    assert str(single.value) == (
        f"1 entry written to {key!r} ({entry.id}) was acknowledged by 0 of the 1 replica "
        "required within 50ms (publish.durability): a failover now could lose it")
    routed = Publisher(operator, key, FlatCodec(), durability=durability, partitions=2)
    with pytest.raises(NotDurableError) as many:
        await routed.publish_many([Event(n=i) for i in range(6)])
    assert len(many.value.ids) == len(many.value.written) == 6
    assert len(many.value.keys) == 2  # both partitions' writes, one error after both


async def test_a_publish_waits_out_a_restart_within_retry_for() -> None:
    """Redis down for about a second: a publish with ``retry_for: 5s`` returns once it
    is back, the entry written once; one with 300 ms gives up by name and exit-code
    class (``PublishUnavailable``, the cause kept); with ``0s`` the connection error
    itself comes at once; a refusal waiting cannot cure (WRONGTYPE) is never retried."""
    import time

    import redis

    from streamboot.client import build_client, close_client
    from streamboot.config.models import RedisSettings
    from streamboot.devserver import RedisServer
    from streamboot.errors import PublishUnavailable

    server = RedisServer().start()
    client = build_client(RedisSettings(url=server.url,
                                        socket_connect_timeout=timedelta(milliseconds=200)))
    operator = RedisOperator(client)
    patient = Publisher(operator, "orders", FlatCodec(), retry_for=5.0)
    quick = Publisher(operator, "orders", FlatCodec(), retry_for=0.3)
    never = Publisher(operator, "orders", FlatCodec())
    try:
        await patient.publish(Event(n=0))
        server.stop(kill=True)
        began = time.monotonic()
        with pytest.raises(PublishUnavailable) as gave_up:
            await quick.publish(Event(n=1))
        assert time.monotonic() - began < 0.3 + 1.0
        assert str(gave_up.value).startswith(
            "could not publish to 'orders' within 0.3s (publish.retry_for): cannot reach "
            f"redis at 127.0.0.1:{server.port} ("), gave_up.value
        assert gave_up.value.__cause__ is not None
        began = time.monotonic()
        with pytest.raises(PublishUnavailable) as at_once:
            await never.publish(Event(n=1))
        assert time.monotonic() - began < 1.0
        assert str(at_once.value).startswith(  # one line, never redis-py's pool dump
            "could not publish to 'orders' (publish.retry_for 0s: not retried): cannot "
            f"reach redis at 127.0.0.1:{server.port} (")
        assert isinstance(at_once.value.__cause__, redis.exceptions.ConnectionError)
        restart = asyncio.get_running_loop().call_later(1.0, server.start)
        began = time.monotonic()
        entry_id = await patient.publish(Event(n=2))
        took = time.monotonic() - began
        restart.cancel()
        assert 0.9 < took < 1.0 + 2.0, took  # back within a backoff step (at most 1 s)
        assert [e.fields["n"] for e in await operator.xrange("orders")
                if e.id == entry_id] == ["2"]
        await client.set("a-string", "x")
        wrong = Publisher(operator, "a-string", FlatCodec(), retry_for=5.0)
        began = time.monotonic()
        with pytest.raises(Exception, match=r"WRONGTYPE|not a stream") as refused:
            await wrong.publish(Event(n=3))
        assert not isinstance(refused.value, PublishUnavailable)
        assert time.monotonic() - began < 0.5
    finally:
        await close_client(client)
        server.close()
