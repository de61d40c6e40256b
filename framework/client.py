"""Build the redis-py asyncio client from ``RedisSettings`` (standalone or cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from framework.config.models import RedisSettings
from framework.operator import RedisClient


def build_client(settings: RedisSettings) -> RedisClient:
    """Decoded (str) replies, hiredis when installed, timeouts from the settings."""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.socket_timeout.total_seconds(),
        "socket_connect_timeout": settings.socket_connect_timeout.total_seconds(),
        "client_name": settings.client_name,
        "health_check_interval": 30,
        # One quick retry hides a stale pooled connection; longer outages are the
        # listener loop's business (it backs off and logs), not hidden inside a command.
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
    }
    if settings.username is not None:
        options["username"] = settings.username
    if settings.password is not None:
        options["password"] = settings.password.get_secret_value()
    if settings.max_connections is not None:
        options["max_connections"] = settings.max_connections
    if settings.cluster:
        return RedisCluster.from_url(settings.url, **options)
    if settings.db is not None:
        options["db"] = settings.db
    return Redis.from_url(settings.url, **options)


async def redis_client_resource(settings: RedisSettings) -> AsyncIterator[RedisClient]:
    """The DI Resource: one client per application, closed at shutdown."""
    client = build_client(settings)
    try:
        yield client
    finally:
        await client.aclose()
