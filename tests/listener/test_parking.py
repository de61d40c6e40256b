"""Idle listeners share one blocking read (listener/parking.py): few connections, new entries still
handled at once, full batches, a prompt stop, errors handed back to each listener."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from loguru import logger
from redis.asyncio import Redis

from streamboot import Application, Message, StreamHandler
from streamboot.config import settings_from_mapping
from tests.conftest import wait_until
from tests.streams import true

SEEN: Counter[str] = Counter()
ARRIVED: dict[str, float] = {}


class Count(StreamHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> None:
        SEEN[message.stream] += 1
        ARRIVED.setdefault(message.id, time.monotonic())


def app_for(url: str, n: int, poll: str = "1s") -> Application:
    SEEN.clear()
    ARRIVED.clear()
    return Application(settings_from_mapping({
        "redis": {"url": url, "client_name": "parking-test"},
        "container": {"poll_timeout": poll, "batch_size": 50},
        "listeners": {f"l{i}": {"stream": f"park:{i}", "group": "g", "consumer": "c",
                                "handler": "tests.listener.test_parking:Count"}
                      for i in range(n)}}))


def subscriptions(app: Application) -> list[Any]:
    assert app.listeners is not None
    return list(app.listeners.subscriptions.values())


async def connections(client: Redis) -> int:
    return sum(1 for c in await client.client_list() if c.get("name") == "parking-test")


async def test_idle_listeners_park_on_one_read_and_wake_at_once(redis_url: str,
                                                                 client: Redis) -> None:
    app = app_for(redis_url, 40)
    try:
        await app.start()
        await wait_until(lambda: true(all(s.parked for s in subscriptions(app))), timeout=10)
        # 40 readers before parking; now the shared read, the renewal thread's, and the
        # pool's (up to 8 created groups at once: SETUPS_AT_ONCE).
        assert await connections(client) <= 11, await connections(client)
        sent = time.monotonic()
        entry = str(await client.xadd("park:17", {"n": "1"}))
        await wait_until(lambda: true(SEEN["park:17"] == 1), timeout=5)
        assert ARRIVED[entry] - sent < 0.3  # not after a poll_timeout: the read returned
        # A burst bigger than a batch on one parked stream: every entry once, none pending.
        await client.xadd("park:3", {"n": "0"})
        for n in range(1, 500):
            await client.xadd("park:3", {"n": str(n)})
        await wait_until(lambda: true(SEEN["park:3"] == 500), timeout=10)
        await wait_until(lambda: true(all(s.parked for s in subscriptions(app))), timeout=10)
        for stream in ("park:17", "park:3"):
            assert (await client.xpending(stream, "g"))["pending"] == 0
        # parked listeners are polling, as far as health is concerned: each shared read's
        # return counts as a poll of every parked listener
        mark = time.monotonic()
        await wait_until(lambda: true(all(s.stats.last_poll > mark
                                          for s in subscriptions(app))), timeout=5)
    finally:
        began = time.monotonic()
        await app.stop()
    assert time.monotonic() - began < 1.5  # the shared read was ended, not waited out
    assert set(SEEN) == {"park:17", "park:3"}
    assert SEEN["park:3"] == 500


async def test_entries_arriving_at_the_stop_are_handled_or_left_pending(
        redis_url: str, client: Redis) -> None:
    app = app_for(redis_url, 10)
    await app.start()
    await wait_until(lambda: true(all(s.parked for s in subscriptions(app))), timeout=10)
    ids = [await client.xadd(f"park:{i}", {"n": "1"}) for i in range(10)]
    await app.stop()
    for i, entry in enumerate(ids):  # handled, pending, or not delivered: never acked unhandled
        pending = (await client.xpending(f"park:{i}", "g"))["pending"]
        (group,) = await client.xinfo_groups(f"park:{i}")
        undelivered = group["last-delivered-id"] != entry
        assert SEEN[f"park:{i}"] == 1 or pending == 1 or undelivered, (entry, SEEN, pending)


async def test_a_group_deleted_under_the_shared_read_is_recreated_by_its_listener(
        redis_url: str, client: Redis) -> None:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    app = app_for(redis_url, 5, poll="500ms")
    try:
        await app.start()
        await wait_until(lambda: true(all(s.parked for s in subscriptions(app))), timeout=10)
        await client.xgroup_destroy("park:2", "g")  # the shared read now fails NOGROUP
        await wait_until(lambda: true(any("recreating it" in line for line in lines)),
                         timeout=10)
        await wait_until(lambda: true(all(s.parked for s in subscriptions(app))), timeout=10)
        await client.xadd("park:2", {"n": "1"})
        await client.xadd("park:4", {"n": "1"})
        await wait_until(lambda: true(SEEN["park:2"] == 1 and SEEN["park:4"] == 1), timeout=10)
    finally:
        await app.stop()
        logger.remove(sink)
    # Only the listener of park:2 said anything: the others were woken quietly (a new
    # user's trial saw all 100 parked listeners log the NOGROUP with a traceback).
    assert [line for line in lines if "recreating it" in line] != []
    assert [line for line in lines if "poll loop error" in line
            or ("NOGROUP" in line and "recreating" not in line)] == []


async def test_listeners_of_different_groups_do_not_share(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    app = Application(settings_from_mapping({
        "redis": {"url": redis_url},
        "container": {"poll_timeout": "500ms"},
        "listeners": {"a": {"stream": "s", "group": "g1", "consumer": "c",
                            "handler": "tests.listener.test_parking:Count"},
                      "b": {"stream": "s", "group": "g2", "consumer": "c",
                            "handler": "tests.listener.test_parking:Count"}}}))
    SEEN.clear()
    try:
        await app.start()
        await wait_until(lambda: true(all(s.parked for s in subscriptions(app))), timeout=10)
        await r.xadd("s", {"n": "1"})
        await wait_until(lambda: true(SEEN["s"] == 2), timeout=5)  # each group once
    finally:
        await app.stop()
        await r.aclose()


async def test_one_listener_leaving_the_lot_does_not_wait_out_the_shared_read(
        redis_url: str, client: Redis) -> None:
    """Rotation releases one period's subscription while the others stay parked: its stop
    ends the shared read at once (CLIENT UNBLOCK) instead of waiting out poll_timeout."""
    app = app_for(redis_url, 5, poll="3s")
    try:
        await app.start()
        await wait_until(lambda: true(all(s.parked for s in subscriptions(app))), timeout=10)
        assert app.listeners is not None
        began = time.monotonic()
        await app.listeners.unregister("l2")
        assert time.monotonic() - began < 1.0
        await wait_until(lambda: true(len(subscriptions(app)) == 4
                                      and all(s.parked for s in subscriptions(app))), timeout=10)
        await client.xadd("park:4", {"n": "1"})
        await wait_until(lambda: true(SEEN["park:4"] == 1), timeout=5)
    finally:
        await app.stop()


async def test_a_stop_while_a_listener_goes_to_park_is_not_waited_out(
        redis_url: str, client: Redis) -> None:
    """The stop arrives while the listener closes its own connection to park (CI saw it on
    a partition's hand-over at SIGTERM): it must not then park and wait for an entry that
    never comes — before, the stop waited out shutdown_timeout (5 s) and exited forced."""
    app = Application(settings_from_mapping({
        "redis": {"url": redis_url, "client_name": "parking-test"},
        "container": {"poll_timeout": "300ms", "shutdown_timeout": "5s"},
        "listeners": {f"l{i}": {"stream": f"park:{i}", "group": "g", "consumer": "c",
                                "handler": "tests.listener.test_parking:Count"}
                      for i in range(2)}}))
    stopping: list[asyncio.Task[None]] = []
    try:
        await app.start()
        assert app.listeners is not None
        listeners = app.listeners
        target = listeners.subscriptions["l0"]
        read = target._read
        close = read.close

        async def close_then_race() -> None:
            if not stopping:  # the first close is the one that goes to park
                stopping.append(asyncio.create_task(listeners.unregister("l0",
                                                                         hand_over=True)))
                await asyncio.sleep(0)  # the stop is requested before the park
            await close()

        read.close = close_then_race  # type: ignore[method-assign]
        await wait_until(lambda: true(bool(stopping)), timeout=10)
        began = time.monotonic()
        await stopping[0]
        assert time.monotonic() - began < 1.5, time.monotonic() - began
        assert not listeners.forced
        await wait_until(lambda: true(all(s.parked for s in subscriptions(app))), timeout=10)
    finally:
        await app.stop()
