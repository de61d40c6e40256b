"""A Redis Cluster primary fails mid-run and comes back: the listeners ride through the
connection errors, MOVED and cluster-down replies, resume on their own, and nothing
published is lost. Marked fault (a node is stopped and restarted); runs in CI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from streamboot import Publisher, RedisOperator
from streamboot.config.models import AppSettings
from streamboot.devserver import RedisClusterServer
from streamboot.partitions.keys import partition_key
from streamboot.testing import run_app
from streamboot.wire.hash_slots import slot
from tests.partitions.handlers import Event

pytestmark = pytest.mark.fault


@pytest.fixture
def durable_cluster() -> Iterator[RedisClusterServer]:
    """Its own cluster, with the AOF on: a restarted node comes back with its data, as a
    production primary (or its promoted replica) does."""
    with RedisClusterServer(appendonly=True) as servers:
        yield servers


def node_of(cluster: RedisClusterServer, key: str) -> int:
    """Index of the node serving ``key``, by the cluster's own slot map."""
    client = redis.Redis.from_url(cluster.url)
    try:
        ranges = client.execute_command("CLUSTER", "SLOTS")
    finally:
        client.close()
    wanted = slot(key)
    port = next(int(r[2][1]) for r in ranges if int(r[0]) <= wanted <= int(r[1]))
    return next(i for i, s in enumerate(cluster.servers) if s.port == port)


async def settled(operator: RedisOperator, key: str, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        with contextlib.suppress(Exception):
            if not (await operator.pending_summary(key, "g")).count:
                return
        await asyncio.sleep(0.1)


async def test_a_primary_stops_and_comes_back_and_every_entry_is_handled(
        durable_cluster: RedisClusterServer) -> None:
    url = durable_cluster.url
    settings = AppSettings(
        redis={"url": url, "cluster": True, "socket_timeout": "2s",
               "socket_connect_timeout": "500ms"},
        container={"poll_timeout": "200ms"},
        listeners={"orders": {"stream": "orders", "group": "g",
                              "handler": "tests.partitions.handlers:EventHandler",
                              "partitions": 3, "partition_by": "customer",
                              "pending_scan": {"interval": "1s", "min_idle": "2s"}}})
    victim = node_of(durable_cluster, partition_key("orders", 1))
    published: list[str] = []
    refused = 0

    async with run_app(settings, url=url) as app:
        publisher = Publisher.for_listener(app.operator, settings.listeners["orders"])

        async def produce() -> None:
            nonlocal refused
            seq = 0
            while seq < 600:
                event = Event(customer=f"c{seq % 30}", seq=seq)
                try:
                    published.append(await publisher.publish(event))
                    seq += 1
                except Exception:  # its partition's node is down: the producer retries
                    refused += 1
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.002)

        producer = asyncio.create_task(produce())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(durable_cluster.servers[victim].stop)  # SIGTERM: AOF flushed
        await asyncio.sleep(2.0)
        await asyncio.to_thread(durable_cluster.servers[victim].start)
        await asyncio.wait_for(producer, 120)
        handler: Any = app.handler("orders")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len({r.seq for r in handler.ran}) < 600 and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        for i in range(3):  # nothing left pending once it settled
            await settled(app.operator, partition_key("orders", i), deadline)
    seqs = {r.seq for r in handler.ran}
    assert seqs == set(range(600)), f"missing {sorted(set(range(600)) - seqs)[:20]}"
    assert refused > 0  # the outage was real: the producer met it
    assert len(published) == 600
