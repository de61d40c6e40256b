"""Changing ``partitions`` later: refused while the old layout holds work, accepted (and
remembered) once it is drained."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from loguru import logger

from streamboot.config.models import AppSettings
from streamboot.errors import StartupError
from streamboot.partitions.repartition import Backlog, count_key, refusal
from streamboot.testing import run_app


def settings(url: str, partitions: int) -> AppSettings:
    return AppSettings(redis={"url": url}, container={"poll_timeout": "100ms"},
                       listeners={"orders": {"stream": "orders", "group": "g",
                                             "handler": "tests.partitions.handlers:EventHandler",
                                             "partitions": partitions,
                                             "partition_by": None if partitions == 1
                                             else "customer"}})


def test_the_refusal_names_each_key_with_work_and_what_to_do() -> None:
    text = refusal("orders", "g", 2, 4, [Backlog("{orders:p0}", 0, 0),
                                         Backlog("{orders:p1}", 3, 1)])
    assert text is not None
    assert "partitions changed from 2 to 4" in text
    assert "{orders:p1} (3 undelivered, 1 pending)" in text
    assert "{orders:p0}" not in text
    assert "stop the producers, let the listener drain with partitions: 2" in text
    assert refusal("orders", "g", 2, 4, [Backlog("{orders:p0}", 0, 0)]) is None


async def test_partitioning_a_stream_with_work_left_is_refused_then_accepted_drained(
        redis_url: str) -> None:
    r: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    async with run_app(settings(redis_url, 1), url=redis_url) as app:
        await app.handled(await app.publish("orders", {"customer": "a", "seq": 1}))
    r.xadd("orders", {"customer": "b", "seq": "2"})  # written while nothing ran
    with pytest.raises(StartupError, match=r"from 1 to 3.*layout: orders \(1 undelivered, 0 pend"):
        async with run_app(settings(redis_url, 3), url=redis_url):
            pass
    async with run_app(settings(redis_url, 1), url=redis_url) as app:  # drain the old way
        for _ in range(100):
            if not r.xinfo_groups("orders")[0]["lag"]:
                break
            import asyncio
            await asyncio.sleep(0.05)
    async with run_app(settings(redis_url, 3), url=redis_url) as app:
        await app.handled(await app.publish("orders", {"customer": "c", "seq": 3}))
    assert r.get(count_key("orders")) == "3"
    r.xadd("{orders:p2}", {"customer": "d", "seq": "4"})  # work left in the 3-layout
    with pytest.raises(StartupError, match=r"from 3 to 2.*\{orders:p2\} \(1 undelivered"):
        async with run_app(settings(redis_url, 2), url=redis_url):
            pass
    r.close()


async def test_a_stream_no_group_read_yet_is_work_and_a_new_listener_says_nothing(
        redis_url: str) -> None:
    """Found by a new user's trial: entries in the plain stream with no group yet were
    stranded by a first start with partitions, and a brand-new listener was told its
    "partitions changed from 1 to 3"."""
    r: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    r.xadd("orders", {"customer": "a", "seq": "1"})  # nobody read it yet
    with pytest.raises(StartupError, match=r"layout: orders \(1 undelivered, 0 pending\)"):
        async with run_app(settings(redis_url, 3), url=redis_url):
            pass
    r.flushdb()
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    try:
        async with run_app(settings(redis_url, 3), url=redis_url):
            pass
    finally:
        logger.remove(sink)
    assert not [line for line in lines if "partitions changed" in line]
    assert r.get(count_key("orders")) == "3"
    r.close()


async def test_dead_letters_of_a_partition_dropped_by_a_smaller_n_are_named(
        redis_url: str) -> None:
    """Also from the trial: lowering N hid the dropped partitions' dead letters, and a
    replay then wrote them to a stream nothing reads."""
    r: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    async with run_app(settings(redis_url, 3), url=redis_url):
        pass
    r.xadd("{orders:p2}:dlq", {"customer": "z", "dlq_stream": "{orders:p2}", "dlq_id": "1-0"})
    with pytest.raises(StartupError, match=r"drops are not empty: \{orders:p2\}:dlq \(1 dead "
                                           r"letter\) \(replay or purge them"):
        async with run_app(settings(redis_url, 2), url=redis_url):
            pass
    r.delete("{orders:p2}:dlq")
    async with run_app(settings(redis_url, 2), url=redis_url):  # purged: accepted
        pass
    assert r.get(count_key("orders")) == "2"
    r.close()
