"""The listener path on a real three-master Redis Cluster: reads, batched acks, dead
letters (a two-key script: the stream and its DLQ share a slot), idempotency markers
spread over other nodes, recovery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from streamboot import RedisOperator
from streamboot.client import build_client, build_sync_client, close_sync_client
from streamboot.codecs import FlatCodec
from streamboot.config.models import (
    DurabilitySettings,
    IdempotencySettings,
    RedisSettings,
    RetrySettings,
)
from streamboot.devserver import RedisClusterServer
from streamboot.errors import NotDurableError
from streamboot.jobs.recovery import PendingRecovery
from streamboot.listener.container import ListenerContainer
from streamboot.publisher import Publisher
from streamboot.wire.hash_slots import slot
from tests.conftest import wait_until
from tests.handlers import FailingHandler, Recorder
from tests.streams import equals, make_spec, pel, true


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    with RedisClusterServer() as servers:
        yield servers


async def test_listener_on_redis_cluster(cluster: RedisClusterServer) -> None:
    settings = RedisSettings(url=cluster.url, cluster=True)
    client = build_client(settings)
    keeper = build_sync_client(settings)
    operator = RedisOperator(client)
    stream = "orders-cluster"
    assert slot(stream) == slot(f"{{{stream}}}:dlq")
    pipe = client.pipeline(transaction=False)
    for i in range(200):
        fields: dict[Any, Any] = {"order_id": f"o{i}", "n": str(i)}
        if i % 10 == 0:
            fields["fail"] = "yes"
        pipe.xadd(stream, fields)
    await pipe.execute()
    recorder = Recorder()
    spec = make_spec(stream, batch_size=25, concurrency=8,
                     retry=RetrySettings(max_deliveries=2, backoff=timedelta(milliseconds=10)),
                     idempotency=IdempotencySettings(key="order_id"))
    listeners = ListenerContainer(operator, keeper)
    sub = listeners.register(spec, FailingHandler(recorder))
    await listeners.start(timeout=10)
    try:
        await wait_until(lambda: true(len(recorder.seen) == 180), timeout=30)
        await wait_until(lambda: true(sub.stats.dead_lettered == 20), timeout=30)
        # Every entry acked (handled, or dead-lettered with its ack): nothing to reclaim.
        await wait_until(lambda: equals(pel(operator, stream), 0), timeout=10)
        assert (await PendingRecovery(sub, operator).run_once()).claimed == 0
    finally:
        await listeners.stop()
    assert max(recorder.seen.values()) == 1
    assert await operator.xlen(f"{{{stream}}}:dlq") == 20
    assert (await operator.pending_summary(stream, "g")).count == 0
    # markers live on whichever node their business key hashes to
    assert await client.exists("streamboot:done:g:{o1}")
    assert await operator.create_stream("rotated-cluster", ttl=timedelta(hours=1), group="g")
    assert await operator.ttl("rotated-cluster") is not None
    await client.aclose()
    close_sync_client(keeper)


async def test_a_durable_publish_waits_on_its_keys_node(cluster: RedisClusterServer) -> None:
    """WAIT rides in the key's node's part of the pipeline (these primaries have no
    replica: 0 acknowledged, said by name), for keys on different nodes alike."""
    client = build_client(RedisSettings(url=cluster.url, cluster=True))
    operator = RedisOperator(client)
    durability = DurabilitySettings(replicas=1, timeout=timedelta(milliseconds=50))
    try:
        for stream in ("durable-a", "durable-b", "durable-c"):
            publisher = Publisher(operator, stream, FlatCodec(), durability=durability)
            with pytest.raises(NotDurableError) as refused:
                await publisher.publish({"n": "1"})
            assert refused.value.acknowledged == 0
            (entry,) = await operator.xrange(stream)
            assert refused.value.ids == [entry.id]
        assert len({slot(s) // 5462 for s in ("durable-a", "durable-b", "durable-c")}) > 1
    finally:
        await client.aclose()


def test_a_closed_sync_cluster_client_leaves_no_connection_open(
        cluster: RedisClusterServer) -> None:
    """The renewal thread's client reaches every node (its script is loaded on each);
    closing it at shutdown leaves none of those connections open — redis-py's own close
    does not (its nodes' pools stay connected until garbage collection)."""
    import redis

    def clients() -> int:
        total = 0
        for server in cluster.servers:
            with redis.Redis(port=server.port) as admin:
                total += int(admin.info("clients")["connected_clients"]) - 1
        return total

    before = clients()
    client = build_sync_client(RedisSettings(url=cluster.url, cluster=True))
    client.ping(target_nodes=redis.cluster.RedisCluster.ALL_NODES)
    assert clients() >= before + len(cluster.servers)
    close_sync_client(client)
    deadline = time.monotonic() + 2.0  # the server sees a close within milliseconds
    while clients() != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert clients() == before
