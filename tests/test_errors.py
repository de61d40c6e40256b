"""Errors say what happened: an exhausted pool is not Redis being down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from framework.client import build_client
from framework.config import ConfigError, settings_from_mapping
from framework.config.models import RedisSettings
from framework.errors import describe_unavailable, is_transient, pool_exhausted


async def test_an_exhausted_pool_is_reported_as_such(redis_url: str) -> None:
    client = build_client(RedisSettings(url=redis_url, max_connections=1,
                                        socket_timeout=timedelta(milliseconds=200)))
    pool = client.connection_pool
    held = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(RedisConnectionError) as caught:
            await client.ping()
    finally:
        await pool.release(held)
        await client.aclose()
    assert pool_exhausted(caught.value)
    assert is_transient(caught.value)  # waited for, retried: it heals when load drops
    text = describe_unavailable(caught.value)
    assert text.startswith("every pooled connection is busy (redis.max_connections)")
    assert "redis unavailable" not in text


async def test_redis_down_is_reported_as_unavailable() -> None:
    client = build_client(RedisSettings(url="redis://127.0.0.1:1/0"))
    with pytest.raises(RedisConnectionError) as caught:
        await client.ping()
    await client.aclose()
    assert not pool_exhausted(caught.value)
    assert describe_unavailable(caught.value).startswith("redis unavailable (ConnectionError")


def test_a_cluster_pool_too_small_for_the_listeners_is_refused() -> None:
    listeners = {f"l{i}": {"stream": f"s{i}", "group": "g", "handler": "x:Y"}
                 for i in range(20)}
    with pytest.raises(ConfigError, match=r"max_connections \(10\) cannot serve") as caught:
        settings_from_mapping({"redis": {"cluster": True, "max_connections": 10},
                               "listeners": listeners})
    assert "set at least 28" in str(caught.value)
    settings_from_mapping({"redis": {"cluster": True, "max_connections": 28},
                           "listeners": listeners})
    # Standalone readers do not use the pool: any size serves them.
    settings_from_mapping({"redis": {"max_connections": 2}, "listeners": listeners})
