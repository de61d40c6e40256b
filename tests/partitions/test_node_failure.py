"""A Redis Cluster primary fails mid-run and comes back: the listeners ride through the
connection errors, MOVED and cluster-down replies, resume on their own, and nothing
published is lost. Marked fault (a node is stopped and restarted); runs in CI."""

from __future__ import annotations

import asyncio
import contextlib
import time
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


def three_partitions(url: str) -> AppSettings:
    """One listener of three partitions on the cluster at ``url``."""
    return AppSettings(
        redis={"url": url, "cluster": True, "socket_timeout": "2s",
               "socket_connect_timeout": "500ms"},
        container={"poll_timeout": "200ms"},
        listeners={"orders": {"stream": "orders", "group": "g",
                              "handler": "tests.partitions.handlers:EventHandler",
                              "partitions": 3, "partition_by": "customer",
                              "pending_scan": {"interval": "1s", "min_idle": "2s"}}})


def node_of(cluster: RedisClusterServer, key: str, asking: int = 0) -> int:
    """Index of the node serving ``key``, by the slot map of node ``asking``."""
    client = redis.Redis(port=cluster.servers[asking].port)
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
    settings = three_partitions(url)
    victim = node_of(durable_cluster, partition_key("orders", 1))
    published: list[str] = []
    refused = 0
    longest = 0.0  # the longest publish: one waited out the outage (publish.retry_for)

    async with run_app(settings, url=url) as app:
        publisher = Publisher.for_listener(app.operator, settings.listeners["orders"])

        async def produce() -> None:
            nonlocal refused, longest
            seq = 0
            while seq < 600:
                event = Event(customer=f"c{seq % 30}", seq=seq)
                began = time.monotonic()
                try:
                    published.append(await publisher.publish(event))
                    longest = max(longest, time.monotonic() - began)
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
    # The outage was real, and no publish raised: each waited it out (retry_for, 5 s).
    assert longest > 1.0, longest
    assert refused == 0, refused
    assert len(published) == 600


async def test_a_primary_killed_is_replaced_by_its_replica_and_the_listeners_follow() -> None:
    """Three primaries with a replica each. The primary of one partition is killed (-9,
    not restarted): the cluster promotes its replica (cluster-node-timeout 1 s), the
    client follows the new slot map, and every entry the cluster holds afterwards is
    handled, none left pending — only what the dead primary had not yet replicated can
    be gone (asynchronous replication: publish.durability is the cure, counted here)."""
    with RedisClusterServer(replicas=1, node_timeout_ms=1000) as cluster:
        url = cluster.url
        settings = three_partitions(url)
        key = partition_key("orders", 1)
        victim = node_of(cluster, key)
        published: list[str] = []
        async with run_app(settings, url=url) as app:
            publisher = Publisher.for_listener(app.operator, settings.listeners["orders"])

            async def produce() -> None:
                seq = 0
                while seq < 600:
                    try:
                        published.append(await publisher.publish(
                            Event(customer=f"c{seq % 30}", seq=seq)))
                        seq += 1
                    except Exception:  # its node is down until the replica takes over
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(0.002)

            producer = asyncio.create_task(produce())
            await asyncio.sleep(0.5)
            loop = asyncio.get_running_loop()
            await asyncio.to_thread(cluster.servers[victim].stop, kill=True)
            killed = loop.time()
            while node_of(cluster, key, asking=(victim + 1) % 6) == victim:
                assert loop.time() - killed < 20, "the replica was never promoted"
                await asyncio.sleep(0.1)
            promoted = loop.time() - killed
            await asyncio.wait_for(producer, 120)
            handler: Any = app.handler("orders")

            async def on_cluster() -> set[int]:
                seqs: set[int] = set()
                for i in range(3):
                    seqs |= {int(e.fields["seq"]) for e in
                             await app.operator.xrange(partition_key("orders", i))}
                return seqs

            held = await on_cluster()
            deadline = loop.time() + 60
            while held - {r.seq for r in handler.ran} and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            for i in range(3):
                await settled(app.operator, partition_key("orders", i), deadline)
                assert (await app.operator.pending_summary(partition_key("orders", i),
                                                           "g")).count == 0
    handled = {r.seq for r in handler.ran}
    assert held <= handled, sorted(held - handled)[:10]
    assert len(published) == 600
    print(f"promoted after {promoted:.1f}s; published 600, gone with the primary "
          f"{600 - len(held)}")
    assert promoted < 10

