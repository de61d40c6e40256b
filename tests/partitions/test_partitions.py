"""Partitioned streams end to end, on one server and on a three-master cluster: routing by
a field, every partition read, dead letters in each partition's own stream, recovery and
rotation per partition."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from streamboot import EntryId, Publisher, RedisOperator
from streamboot.client import close_sync_client
from streamboot.config.models import AppSettings
from streamboot.errors import UnpublishableError
from streamboot.partitions.keys import partition_key, partition_of
from streamboot.testing import run_app
from streamboot.wire.hash_slots import slot
from tests.partitions.conftest import Target
from tests.partitions.handlers import Event

HANDLER = "tests.partitions.handlers:EventHandler"


def settings(target: Target, **listener: Any) -> AppSettings:
    return AppSettings(
        # A reconnect must fit in a quarter of the shortest min_idle (300ms below).
        redis={"url": target.url, "cluster": target.cluster, "socket_connect_timeout": "75ms"},
        container={"poll_timeout": "100ms"},
        listeners={"orders": {"stream": "orders", "group": "g", "handler": HANDLER,
                              "partitions": 3, "partition_by": "customer",
                              "retry": {"max_deliveries": 2, "backoff": "10ms"},
                              "cleanup": {"consumer_idle": "1h"}, **listener}})


async def test_routing_by_field_keeps_each_key_in_one_partition_and_reads_them_all(
        target: Target) -> None:
    async with run_app(settings(target), url=target.url) as app:
        ids = [await app.publish("orders", Event(customer=f"c{i % 10}", seq=i))
               for i in range(120)]
        await app.handled(*ids)
        ran = app.handler("orders").ran  # type: ignore[attr-defined]
    assert sorted(r.seq for r in ran) == list(range(120))  # each once
    partitions: dict[str, set[str]] = defaultdict(set)
    for r in ran:
        partitions[r.customer].add(r.stream)
    assert all(len(streams) == 1 for streams in partitions.values())
    for customer, (stream,) in partitions.items():
        assert stream == partition_key("orders", partition_of(customer, 3))
    assert {r.stream for r in ran} == {"{orders:p0}", "{orders:p1}", "{orders:p2}"}
    if target.cluster:  # three slots, and here three nodes: the load is spread
        assert len({slot(f"{{orders:p{i}}}") for i in range(3)}) == 3
        assert all(n > 0 for n in target.keys_per_node()), target.keys_per_node()


async def test_round_robin_without_partition_by_spreads_evenly(target: Target) -> None:
    config = settings(target).model_copy(deep=True)
    listener = config.listeners["orders"].model_copy(update={"partition_by": None})
    config = config.model_copy(update={"listeners": {"orders": listener}})
    async with run_app(config, url=target.url) as app:
        ids = [await app.publish("orders", Event(customer="same", seq=i)) for i in range(30)]
        await app.handled(*ids)
        operator = app.operator
        lengths = [await operator.xlen(f"{{orders:p{i}}}") for i in range(3)]
    assert lengths == [10, 10, 10]


async def test_failures_are_dead_lettered_into_their_own_partitions_stream(
        target: Target) -> None:
    async with run_app(settings(target), url=target.url) as app:
        bad = [await app.publish("orders", Event(customer=f"c{i}", seq=i, fail=True))
               for i in range(6)]
        good = [await app.publish("orders", Event(customer=f"c{i}", seq=10 + i))
                for i in range(6)]
        letters = await app.dead_lettered(*bad)
        await app.handled(*good)
        operator = app.operator
        for letter in letters:
            customer = letter.fields["customer"]
            home = partition_key("orders", partition_of(customer, 3))
            dlq = f"{home}:dlq"
            assert slot(dlq) == slot(home)
            assert letter.id in await _dlq_ids(operator, dlq)
        for i in range(3):
            pending = await operator.pending_summary(f"{{orders:p{i}}}", "g")
            assert pending.count == 0


async def _dlq_ids(operator: RedisOperator, dlq: str) -> list[str]:
    return [entry.fields["dlq_id"] for entry in await operator.xrange(dlq, count=100)]


async def test_an_entry_of_a_dead_consumer_is_recovered_in_its_partition(
        target: Target) -> None:
    admin: Any = (redis.RedisCluster.from_url(target.url, decode_responses=True)
                  if target.cluster else redis.Redis.from_url(target.url,
                                                              decode_responses=True))
    key = partition_key("orders", partition_of("orphan", 3))
    admin.xgroup_create(key, "g", "0", mkstream=True)
    admin.xadd(key, {"customer": "orphan", "seq": "7"})
    admin.xreadgroup("g", "dead-consumer", {key: ">"})  # delivered, never acked
    config = settings(target, pending_scan={"interval": "200ms", "min_idle": "300ms"})
    async with run_app(config, url=target.url) as app:
        handler = app.handler("orders")
        for _ in range(100):
            if handler.ran:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        (ran,) = handler.ran  # type: ignore[attr-defined]
        assert (ran.stream, ran.customer, ran.delivery) == (key, "orphan", 2)
        for _ in range(50):
            if not admin.xpending(key, "g")["pending"]:
                break
            await asyncio.sleep(0.05)
        assert admin.xpending(key, "g")["pending"] == 0
    close_sync_client(admin)


async def test_rotation_runs_per_partition(target: Target) -> None:
    rotation = {"key_format": "orders:%Y%m%d%H", "check_interval": "1s", "precreate": "1s"}
    async with run_app(settings(target, rotation=rotation), url=target.url) as app:
        ids = [await app.publish("orders", Event(customer=f"c{i}", seq=i)) for i in range(9)]
        await app.handled(*ids)
        operator = app.operator
        hour = f"orders:{datetime.now(UTC):%Y%m%d%H}"
        ran = app.handler("orders").ran  # type: ignore[attr-defined]
        assert {r.stream for r in ran} <= {partition_key(hour, i) for i in range(3)}
        for i in range(3):  # each partition's period made by its rotation job, with a TTL
            key = partition_key(hour, i)
            assert await operator.exists(key)
            ttl = await operator.ttl(key)
            assert ttl is not None
            assert ttl > timedelta(hours=2)
        jobs = sorted(name for name, declared in app.application.declared.items()
                      if "rotation" in declared.jobs)
        assert jobs == ["orders[p0]", "orders[p1]", "orders[p2]"]


async def test_a_publish_without_the_routing_field_raises(target: Target) -> None:
    async with run_app(settings(target), url=target.url) as app:
        publisher = Publisher.for_listener(app.operator,
                                           app.application.settings.listeners["orders"])
        with pytest.raises(UnpublishableError, match="no 'customer' field"):
            await publisher.publish({"seq": "1"})
        for i in range(3):
            assert await app.operator.xlen(f"{{orders:p{i}}}") == 0  # nothing written


async def test_the_kit_tells_apart_equal_ids_of_two_partitions(target: Target) -> None:
    """Ids are unique per stream only: two partitions hand out the same id in the same
    millisecond (the cluster run of the dead-letter test above met it: an entry's state was
    read from the wrong partition). ``app.publish`` returns ids that know their stream."""
    async with run_app(settings(target), url=target.url) as app:
        first = await app.publish("orders", Event(customer="c0", seq=0))
        assert first.stream == partition_key("orders", partition_of("c0", 3))
        other = next(f"{{orders:p{i}}}" for i in range(3) if f"{{orders:p{i}}}" != first.stream)
        app._record("orders", EntryId(str(first), other))  # the same id, another partition
        await app.handled(first)  # the one published, in its own partition
        with pytest.raises(ValueError, match=r"pass the id app\.publish returned"):
            await app.handled(str(first))
