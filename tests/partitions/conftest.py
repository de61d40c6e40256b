"""The scale-out tests run twice: on one redis-server and on a three-master Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from streamboot.devserver import RedisClusterServer, RedisServer


@dataclass(frozen=True)
class Target:
    url: str
    cluster: bool
    nodes: tuple[str, ...]
    """Each node's own URL (one for a single server)."""

    def flush(self) -> None:
        for url in self.nodes:
            client = redis.Redis.from_url(url)
            try:
                client.flushall()
            finally:
                client.close()

    def keys_per_node(self) -> list[int]:
        counts = []
        for url in self.nodes:
            client = redis.Redis.from_url(url)
            try:
                counts.append(int(client.dbsize()))
            finally:
                client.close()
        return counts


@pytest.fixture(scope="session")
def cluster_servers() -> Iterator[RedisClusterServer]:
    with RedisClusterServer() as servers:
        yield servers


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest, redis_server: RedisServer) -> Target:
    if request.param == "single":
        found = Target(redis_server.url, False, (redis_server.url,))
    else:
        servers: RedisClusterServer = request.getfixturevalue("cluster_servers")
        found = Target(servers.url, True, tuple(s.url for s in servers.servers))
    found.flush()
    return found
