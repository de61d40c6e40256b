"""WAIT beside the writes it vouches for: one round trip, one connection.

``WAIT numreplicas timeout`` counts the replicas that have this *connection's* writes, so
it must travel on the connection that wrote — in the writes' own pipeline. On a Cluster
it goes to the key's node, inside that node's part of the pipeline (redis-py sends each
node's commands on one connection)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis, RedisCluster

RedisClient = Redis | RedisCluster


async def with_wait(client: RedisClient, key: str, replicas: int, timeout_ms: int,
                    queue: Callable[[Any], object]) -> tuple[list[Any], int]:
    """Queue the writes (``queue(pipeline)``), then WAIT; returns the writes' replies and
    how many replicas acknowledged them — 0 when the key's slot moved during the call
    (the WAIT then ran on a node that did not take the writes)."""
    pipe = client.pipeline(transaction=False)
    queue(pipe)
    node = None
    if isinstance(client, RedisCluster):
        await client.initialize()  # the slot map (a no-op once it has one)
        node = client.get_node_from_key(key)
        pipe.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
    else:
        pipe.execute_command("WAIT", replicas, timeout_ms)
    replies = await pipe.execute()
    acknowledged = int(replies[-1])
    if node is not None and isinstance(client, RedisCluster):
        now = client.get_node_from_key(key)
        if now is None or now.name != node.name:
            acknowledged = 0
    return list(replies[:-1]), acknowledged
