import asyncio
from datetime import timedelta

import pytest
from pydantic import BaseModel

from framework import RedisOperator
from framework.codecs import FlatCodec
from framework.config.models import BackpressureSettings
from framework.publisher import Backpressure, Publisher


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
