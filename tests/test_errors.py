"""Errors say what happened: an exhausted pool is not Redis being down."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError

from streamboot.client import build_client
from streamboot.config import ConfigError, settings_from_mapping
from streamboot.config.models import RedisSettings
from streamboot.wire.operator import RedisOperator
from streamboot.wire.redis_errors import (
    describe_permanent,
    describe_unavailable,
    is_permanent,
    is_transient,
    pool_exhausted,
    server_too_old,
)


async def test_an_exhausted_pool_is_reported_as_such(redis_url: str) -> None:
    client = build_client(RedisSettings(url=redis_url, max_connections=1,
                                        socket_timeout=timedelta(milliseconds=200)))
    assert isinstance(client, redis.asyncio.Redis)
    pool = client.connection_pool
    held = await pool.get_connection()
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


@pytest.mark.parametrize(("url", "where"), [("redis://127.0.0.1:1/0", "127.0.0.1:1"),
                                           ("redis://[::1]:1/0", "[::1]:1")])
async def test_redis_down_says_where_and_why(url: str, where: str) -> None:
    client = build_client(RedisSettings(url=url))
    operator = RedisOperator(client)
    with pytest.raises(RedisConnectionError) as caught:
        await client.ping()
    await client.aclose()
    assert not pool_exhausted(caught.value)
    assert is_transient(caught.value)
    assert describe_unavailable(caught.value, operator.address) == (
        f"cannot reach redis at {where} (connection refused)")


async def test_a_wrong_password_is_permanent_never_cannot_reach(redis_url: str) -> None:
    """redis-py raises AuthenticationError as a kind of ConnectionError: it must not be
    retried for ever as if the server were down."""
    client = build_client(RedisSettings(url=redis_url, username="nobody", password="nope"))
    with pytest.raises(RedisConnectionError) as caught:
        await client.ping()
    await client.aclose()
    assert is_permanent(caught.value)
    assert not is_transient(caught.value)
    assert describe_permanent(caught.value, "h:1").startswith("authentication failed at redis h:1:")


def test_server_versions() -> None:
    assert server_too_old("6.2.14")
    assert not server_too_old("7.0.15")
    assert not server_too_old("7.2.4")  # what Valkey 8 and 9 report
    assert not server_too_old("unknown")


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


@pytest.mark.parametrize(("url", "problem"), [
    ("redis://127.0.0.1:notaport/0", "port 'notaport' is not a port"),
    ("redis://127.0.0.1:99999/0", "port '99999' is not a port"),
    ("redis://127.0.0.1:6379/abc", "database 'abc' in the path is not a number"),
])
def test_a_url_redis_py_cannot_use_is_a_config_problem(url: str, problem: str) -> None:
    """A trial: a bad port was a 183-line ValueError traceback from redis-py at connect
    time (check, run, the sample); ``/abc`` quietly meant database 0."""
    with pytest.raises(ConfigError, match=problem) as caught:
        settings_from_mapping({"redis": {"url": url}})
    assert "redis.url" in str(caught.value)


def test_urls_redis_py_takes_pass() -> None:
    for url in ("redis://127.0.0.1:6379/", "redis://u:p@[::1]:6379/2", "redis://localhost",
                "rediss://h:6380/15", "unix:///tmp/redis.sock?db=1"):
        settings_from_mapping({"redis": {"url": url}})


def test_the_servers_temporary_refusals_are_transient_and_named() -> None:
    """redis-py turns READONLY, TRYAGAIN, MASTERDOWN and CLUSTERDOWN into classes and drops
    the code from the text; they are still "not now" (the defect: a demoted primary's
    READONLY took the unexpected-error path, a traceback per retry)."""
    from redis.exceptions import (
        ClusterDownError,
        MasterDownError,
        ReadOnlyError,
        ResponseError,
        TryAgainError,
    )

    from streamboot.errors import NoGroupError
    from streamboot.wire.redis_errors import read_only, translate_response_error

    demoted = ReadOnlyError("You can't write against a read only replica.")
    assert is_transient(demoted)
    assert read_only(demoted)
    assert describe_unavailable(demoted, "h:1") == \
        "redis at h:1 is a read-only replica now (a failover?)"
    for exc, code in ((TryAgainError("Multiple keys request during rehashing of slot"),
                       "TRYAGAIN"),
                      (MasterDownError("Link with MASTER is down"), "MASTERDOWN"),
                      (ClusterDownError("The cluster is down"), "CLUSTERDOWN")):
        assert is_transient(exc)
        assert not read_only(exc)
        assert describe_unavailable(exc, "h:1").startswith(f"redis at h:1 is not ready ({code} ")
    # A blocked read ended by the demotion is not a deleted stream; a deleted one is.
    unblocked = ResponseError("UNBLOCKED force unblock from blocking operation, instance "
                              "state changed (master -> replica?)")
    assert translate_response_error(unblocked, "s", "g") is unblocked
    assert read_only(unblocked)
    assert is_transient(unblocked)
    gone = ResponseError("UNBLOCKED the stream key no longer exists")
    assert isinstance(translate_response_error(gone, "s", "g"), NoGroupError)
    assert not read_only(gone)
