"""EmbeddedApp in the test's own event loop (as a host app's lifespan runs it): publishers
only, the dependencies' errors, the host's log sinks, and what a publish returns."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from loguru import logger

from streamboot import EntryId, UsageError
from streamboot.config import settings_from_mapping
from streamboot.partitions.keys import partition_key
from streamboot.web import EmbeddedApp
from tests.conftest import wait_until


def settings(redis_url: str, key: str, **listener: Any) -> Any:
    return settings_from_mapping({
        "application": {"name": "embedded-test"},
        "redis": {"url": redis_url},
        "container": {"poll_timeout": "50ms"},
        "scheduler": {"enabled": False},
        "listeners": {"orders": {"stream": key, "group": "g", "consumer": "c",
                                 "handler": "tests.handlers:LoggingHandler", **listener}},
    })


async def test_publishers_only_start_no_listener_and_return_ids_that_know_their_stream(
        redis_url: str, key: str, client: aioredis.Redis) -> None:
    streams = EmbeddedApp(settings(redis_url, key, partitions=3, partition_by="order_id"),
                          listeners=False, logging="host")
    async with streams.running():
        publish = streams.publisher("orders")
        publisher = publish()
        assert publisher is publish()  # one per listener, kept between requests
        one = await publisher.publish({"order_id": "o-1"})
        many = await publisher.publish_many([{"order_id": f"o-{i}"} for i in range(12)])
        raw = await publisher.publish_fields({"order_id": "o-1", "note": "by hand"})
        health = await streams.health()
    for entry in (one, *many, raw):
        assert isinstance(entry, EntryId)
        assert isinstance(entry, str)
        assert entry.stream in {partition_key(key, p) for p in range(3)}
        assert [i for i, _ in await client.xrange(entry.stream, entry, entry) or []] == [entry]
    assert raw.stream == one.stream  # o-1's partition, by the same rule
    assert len({e.stream for e in many}) == 3
    for partition in range(3):  # nothing was read here: no group, no consumer
        assert await client.xinfo_groups(partition_key(key, partition)) == []
    assert health == {"healthy": True, "problems": []}


async def test_the_dependencies_say_what_is_wrong(redis_url: str, key: str) -> None:
    streams = EmbeddedApp(settings(redis_url, key), listeners=False)
    with pytest.raises(UsageError, match=r"^no listener 'ordres' in <settings> "
                                         r"\(listeners: orders\)$"):
        streams.publisher("ordres")  # at import, not at the first request
    with pytest.raises(UsageError, match="embedded-test is not started: pass "
                                         r"EmbeddedApp.lifespan to the web app"):
        streams.publisher("orders")()
    with pytest.raises(UsageError, match="logging must be 'streamboot' or 'host'"):
        EmbeddedApp(settings(redis_url, key), logging="loguru")  # type: ignore[arg-type]
    async with streams.running():
        with pytest.raises(UsageError, match="already started"):
            await streams.start()
        with pytest.raises(UsageError, match="no provider named 'nosuch'"):
            await streams.bean("nosuch")()
        assert await (await streams.bean("redis")()).ping()


async def test_with_the_host_owning_logging_its_sink_gets_each_line_with_its_context(
        redis_url: str, key: str) -> None:
    records: list[Any] = []
    sink = logger.add(lambda m: records.append(m.record), level="INFO")
    try:
        streams = EmbeddedApp(settings(redis_url, key), logging="host")
        async with streams.running():
            entry = await streams.publisher("orders")().publish_fields({"a": "1"})

            async def logged() -> bool:
                return any(r["message"] == f"user log line for {entry}" for r in records)

            await wait_until(logged)
    finally:
        logger.remove(sink)  # the host's sink was never removed by the start: it got lines
    (line,) = [r for r in records if r["message"] == f"user log line for {entry}"]
    assert line["extra"]["listener"] == "orders"
    assert line["extra"]["entry_id"] == entry
    assert line["extra"]["stream"] == key
